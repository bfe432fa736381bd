/**
 * The reference datasets' geometry, measured on what they draw: the basis is orthonormal, the class
 * means sit `separation` apart (exactly, and as the sample means measure them), the spread within a
 * class is σ along the subspace and nothing outside it, values lie in [0, 1], and a seed gives the
 * same images.
 */
import { referenceDataset, ReferenceDatasetOptions, smoothBasis } from '../../src/data/referenceDatasets';

const PIXELS = 28 * 28;
const BASE: ReferenceDatasetOptions = {
  classes: 10,
  dimension: 12,
  separation: 3,
  spread: 0.3,
  trainCount: 2000,
  testCount: 200,
  seed: 5,
};

const distance = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
};

function sampleMeans(pixels: Float32Array, labels: Uint8Array, classes: number): Float64Array[] {
  const sums = Array.from({ length: classes }, () => new Float64Array(PIXELS));
  const counts = new Array<number>(classes).fill(0);
  labels.forEach((k, n) => {
    counts[k]++;
    for (let p = 0; p < PIXELS; p++) sums[k][p] += pixels[n * PIXELS + p];
  });
  return sums.map((s, k) => s.map((v) => v / counts[k]));
}

test('the smooth basis is orthonormal and smooth (neighbouring pixels close)', () => {
  const d = 40;
  const basis = smoothBasis(d);
  for (let a = 0; a < d; a++)
    for (let b = a; b < d; b++) {
      let dot = 0;
      for (let p = 0; p < PIXELS; p++) dot += basis[a * PIXELS + p] * basis[b * PIXELS + p];
      expect(dot).toBeCloseTo(a === b ? 1 : 0, 5);
    }
  // The roughest of the 40 has frequencies u + v = 8 of 27: far from pixel-to-pixel alternation.
  const row = basis.subarray((d - 1) * PIXELS, d * PIXELS);
  let jump = 0;
  for (let y = 0; y < 28; y++)
    for (let x = 1; x < 28; x++) jump = Math.max(jump, Math.abs(row[y * 28 + x] - row[y * 28 + x - 1]));
  expect(jump).toBeLessThan(0.5 * Math.max(...Array.from(row, Math.abs)));
  expect(() => smoothBasis(0)).toThrow(RangeError);
});

test('class means are `separation` apart, exactly and as measured on the samples', () => {
  const set = referenceDataset(BASE);
  for (let i = 0; i < 10; i++)
    for (let j = i + 1; j < 10; j++) {
      const d = distance(
        set.means.subarray(i * PIXELS, (i + 1) * PIXELS),
        set.means.subarray(j * PIXELS, (j + 1) * PIXELS),
      );
      expect(d).toBeCloseTo(BASE.separation, 4);
    }
  // 200 images a class: each sample mean is off by σ √(d / 200) ≈ 0.07 in L2, a difference by ≈ 0.1.
  const measured = sampleMeans(set.train.pixels, set.train.labels, 10);
  for (let i = 0; i < 10; i++)
    for (let j = i + 1; j < 10; j++)
      expect(Math.abs(distance(measured[i], measured[j]) - BASE.separation)).toBeLessThan(0.3);
  expect(set.clippedShare).toBeLessThan(1e-3);
  // A wider separation moves the measured means apart with it.
  const wide = referenceDataset({ ...BASE, separation: 6 });
  const m = sampleMeans(wide.train.pixels, wide.train.labels, 10);
  expect(distance(m[0], m[1])).toBeGreaterThan(5.5);
});

test('the spread is σ along each of the d directions and nothing outside the subspace', () => {
  const set = referenceDataset(BASE);
  const basis = smoothBasis(BASE.dimension);
  const means = sampleMeans(set.train.pixels, set.train.labels, 10);
  const variance = new Float64Array(BASE.dimension);
  let outside = 0;
  const residual = new Float64Array(PIXELS);
  for (let n = 0; n < set.train.count; n++) {
    const k = set.train.labels[n];
    for (let p = 0; p < PIXELS; p++) residual[p] = set.train.pixels[n * PIXELS + p] - means[k][p];
    for (let r = 0; r < BASE.dimension; r++) {
      let z = 0;
      for (let p = 0; p < PIXELS; p++) z += residual[p] * basis[r * PIXELS + p];
      variance[r] += z * z;
      for (let p = 0; p < PIXELS; p++) residual[p] -= z * basis[r * PIXELS + p];
    }
    outside += residual.reduce((s, v) => s + v * v, 0);
  }
  for (const v of variance) expect(Math.sqrt(v / set.train.count)).toBeCloseTo(BASE.spread, 1);
  // Only float32 rounding lies outside the subspace.
  expect(Math.sqrt(outside / set.train.count)).toBeLessThan(1e-3);
});

test('values lie in [0, 1]; labels balanced; the same seed draws the same images, another seed others', () => {
  const a = referenceDataset({ ...BASE, dimension: 100, separation: 5, spread: 0.6, trainCount: 1000 });
  for (const set of [a.train, a.test]) {
    expect(set.pixels.length).toBe(set.count * PIXELS);
    expect(set.pixels.reduce((m, v) => Math.min(m, v), 1)).toBeGreaterThanOrEqual(0);
    expect(set.pixels.reduce((m, v) => Math.max(m, v), 0)).toBeLessThanOrEqual(1);
  }
  const counts = new Array<number>(10).fill(0);
  a.train.labels.forEach((k) => counts[k]++);
  expect(counts).toEqual(new Array(10).fill(100));
  expect(a.labels).toHaveLength(10);
  const b = referenceDataset({ ...BASE, dimension: 100, separation: 5, spread: 0.6, trainCount: 1000 });
  // Byte for byte (jest's deep equality walks 900 000 floats one by one: half a minute).
  const same = (x: Float32Array, y: Float32Array) => Buffer.from(x.buffer).equals(Buffer.from(y.buffer));
  expect(same(b.train.pixels, a.train.pixels)).toBe(true);
  expect(same(b.test.pixels, a.test.pixels)).toBe(true);
  expect(Array.from(b.train.labels)).toEqual(Array.from(a.train.labels));
  const c = referenceDataset({ ...BASE, dimension: 100, separation: 5, spread: 0.6, trainCount: 1000, seed: 6 });
  expect(distance(c.train.pixels.subarray(0, PIXELS), a.train.pixels.subarray(0, PIXELS))).toBeGreaterThan(0.1);
  // Train and test are different draws.
  expect(distance(a.test.pixels.subarray(0, PIXELS), a.train.pixels.subarray(0, PIXELS))).toBeGreaterThan(0.1);
});

test('the L∞ budget to the Bayes boundary grows with the separation; bad geometry is refused', () => {
  const near = referenceDataset({ ...BASE, separation: 1.5 });
  const far = referenceDataset({ ...BASE, separation: 4.5 });
  expect(far.linfToBoundary / near.linfToBoundary).toBeCloseTo(3, 5);
  expect(near.linfToBoundary).toBeGreaterThan(0);
  expect(() => referenceDataset({ ...BASE, classes: 11 })).toThrow(/classes/);
  expect(() => referenceDataset({ ...BASE, dimension: 5 })).toThrow(/dimension/);
  expect(() => referenceDataset({ ...BASE, separation: 0 })).toThrow(/separation/);
  expect(() => referenceDataset({ ...BASE, trainCount: 3 })).toThrow(/trainCount/);
});
