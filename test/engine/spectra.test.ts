/**
 * The matrix-product DFT against a naive DFT, on every backend present. Tolerance 1e-4 relative to
 * the largest coefficient (float32 products of length ≤ 32).
 */
import * as tf from '@tensorflow/tfjs';
import {
  FACTORED_DFT_MIN,
  spectralExtras,
  dft2d,
  highFrequencyShare,
  highFrequencyShareImages,
  idft2d,
  lowPass,
  lowPassImages,
  lowPassMask,
  powerSpectrum,
  radialFrequencyGrid,
} from '../../src/engine/spectra';
import { backendsUnderTest, randomValues, setUpBackends } from '../helpers/backends';

function naiveDft(x: Float32Array, h: number, w: number): { re: number[]; im: number[] } {
  const re: number[] = [];
  const im: number[] = [];
  for (let k = 0; k < h; k++) {
    for (let l = 0; l < w; l++) {
      let sr = 0;
      let si = 0;
      for (let y = 0; y < h; y++) {
        for (let z = 0; z < w; z++) {
          const a = -2 * Math.PI * ((k * y) / h + (l * z) / w);
          sr += x[y * w + z] * Math.cos(a);
          si += x[y * w + z] * Math.sin(a);
        }
      }
      re.push(sr);
      im.push(si);
    }
  }
  return { re, im };
}

beforeAll(async () => {
  await setUpBackends();
});

afterEach(async () => {
  await tf.setBackend('wasm');
});

// Reads are asynchronous (t.data()): the WebGPU backend cannot read synchronously in Node.
describe.each(backendsUnderTest())('on %s', (backend) => {
  beforeEach(async () => {
    await tf.setBackend(backend);
  });

  test.each([
    [6, 5],
    [8, 8],
    [28, 28],
    [7, 12],
  ])('dft2d of a %i×%i batch matches the naive DFT', async (h, w) => {
    const n = 3;
    const values = randomValues(n * h * w, h * 31 + w);
    const { re, im } = dft2d(tf.tensor3d(values, [n, h, w]));
    const R = await re.data();
    const I = await im.data();
    for (let b = 0; b < n; b++) {
      const ref = naiveDft(values.subarray(b * h * w, (b + 1) * h * w), h, w);
      const scale = Math.max(1, ...ref.re.map(Math.abs), ...ref.im.map(Math.abs));
      for (let i = 0; i < h * w; i++) {
        expect(Math.abs(R[b * h * w + i] - ref.re[i]) / scale).toBeLessThan(1e-4);
        expect(Math.abs(I[b * h * w + i] - ref.im[i]) / scale).toBeLessThan(1e-4);
      }
    }
    tf.dispose([re, im]);
  });

  test('idft2d inverts dft2d', async () => {
    const x = tf.tensor3d(randomValues(2 * 10 * 9, 3), [2, 10, 9]);
    const back = idft2d(dft2d(x));
    expect((await tf.max(tf.abs(tf.sub(back, x))).data())[0]).toBeLessThan(1e-5);
  });

  test('a constant image has all its power at DC; a checkerboard at the Nyquist corner', async () => {
    const h = 8;
    const constant = new Float32Array(h * h).fill(0.5);
    const checker = new Float32Array(h * h).map((_, i) => ((Math.floor(i / h) + (i % h)) % 2 ? 1 : 0));
    const p = (await powerSpectrum(tf.tensor3d([...constant, ...checker], [2, h, h])).data()) as Float32Array;
    const total = (b: number) => p.subarray(b * h * h, (b + 1) * h * h).reduce((s, v) => s + v, 0);
    expect(p[0] / total(0)).toBeCloseTo(1, 5);
    // The checkerboard: half its power at DC (its mean 0.5), half at (h/2, h/2).
    const corner = h * h + (h / 2) * h + h / 2;
    expect(p[corner] / total(1)).toBeCloseTo(0.5, 5);
    expect(p[h * h] / total(1)).toBeCloseTo(0.5, 5);
  });

  test('low-pass keeps a constant image, removes a checkerboard, and with a radius past the corner is the identity', async () => {
    const h = 8;
    const constant = new Float32Array(h * h).fill(0.25);
    const checker = new Float32Array(h * h).map((_, i) => ((Math.floor(i / h) + (i % h)) % 2 ? 1 : 0));
    const x = tf.tensor3d([...constant, ...checker], [2, h, h]);
    const out = (await lowPass(x, 0.3, 'ideal').data()) as Float32Array;
    out.subarray(0, h * h).forEach((v) => expect(v).toBeCloseTo(0.25, 5));
    out.subarray(h * h).forEach((v) => expect(v).toBeCloseTo(0.5, 5)); // only the mean survives
    const r = tf.tensor3d(randomValues(2 * 9 * 7, 4), [2, 9, 7]);
    expect((await tf.max(tf.abs(tf.sub(lowPass(r, 0.75, 'ideal'), r))).data())[0]).toBeLessThan(1e-5);
  });

  test.each([
    ['ideal', 6, 5],
    ['gaussian', 6, 5],
    ['ideal', 5, 8], // an even width: the half spectrum's Nyquist column counts once
    ['gaussian', 7, 6],
  ] as const)('%s low-pass of a %i×%i image matches mask × naive DFT, inverted naively', async (kind, h, w) => {
    const v = randomValues(h * w, 17);
    const got = (await lowPass(tf.tensor3d(v, [1, h, w]), 0.25, kind).data()) as Float32Array;
    const { re, im } = naiveDft(v, h, w);
    const mask = lowPassMask(h, w, 0.25, kind);
    for (let y = 0; y < h; y++) {
      for (let z = 0; z < w; z++) {
        let acc = 0;
        for (let k = 0; k < h; k++) {
          for (let l = 0; l < w; l++) {
            const a = 2 * Math.PI * ((k * y) / h + (l * z) / w);
            const i = k * w + l;
            acc += mask[i] * (re[i] * Math.cos(a) - im[i] * Math.sin(a));
          }
        }
        expect(got[y * w + z]).toBeCloseTo(acc / (h * w), 4);
      }
    }
  });

  test.each([
    [2, 36, 34, 3],
    [1, 33, 35, 1],
  ])(
    'high-frequency shares of [%i, %i, %i, %i] from the half spectrum = from the full power spectrum',
    async (n, h, w, c) => {
      const v = randomValues(n * h * w * c, 29);
      const cutoffs = [0.1, 0.3, 0.5];
      const shares = await highFrequencyShareImages(tf.tensor4d(v, [n, h, w, c]), cutoffs).data(); // [N, K, C]
      const planes = tf.reshape(tf.transpose(tf.tensor4d(v, [n, h, w, c]), [0, 3, 1, 2]), [n * c, h, w]);
      const power = await powerSpectrum(planes as tf.Tensor3D).data();
      const r = radialFrequencyGrid(h, w);
      for (let p = 0; p < n * c; p++) {
        let ac = 0;
        const high = cutoffs.map(() => 0);
        r.forEach((f, bin) => {
          const e = power[p * h * w + bin];
          if (f > 0) ac += e;
          cutoffs.forEach((cut, j) => (high[j] += f > cut ? e : 0));
        });
        // The colour channels (RGB's fourth sieve channel, luminance, is checked on its own above).
        const [i, ch] = [Math.floor(p / c), p % c];
        const cs = c === 3 ? 4 : c;
        cutoffs.forEach((_, j) => expect(shares[(i * cutoffs.length + j) * cs + ch]).toBeCloseTo(high[j] / ac, 4));
      }
    },
  );

  test('high-frequency share: 0 for a constant image, 1 for a checkerboard, and low-pass lowers it', async () => {
    const h = 16;
    const constant = new Float32Array(h * h).fill(0.7);
    const checker = new Float32Array(h * h).map((_, i) => ((Math.floor(i / h) + (i % h)) % 2 ? 1 : 0));
    const noise = randomValues(h * h, 8);
    const x = tf.tensor3d([...constant, ...checker, ...noise], [3, h, h]);
    const share = (await highFrequencyShare(x, 0.25).data()) as Float32Array;
    expect(share[0]).toBeLessThan(1e-3); // float32 residue only
    expect(share[1]).toBeCloseTo(1, 5);
    // White noise spreads its energy evenly: its share is about the share of bins above the cut-off
    // (one 16×16 draw: within 0.1).
    const bins = radialFrequencyGrid(h, h).filter((f) => f > 0);
    expect(Math.abs(share[2] - bins.filter((f) => f > 0.25).length / bins.length)).toBeLessThan(0.1);
    const filtered = (await highFrequencyShare(lowPass(x, 0.2, 'ideal'), 0.25).data()) as Float32Array;
    expect(filtered[2]).toBeLessThan(1e-6);
  });

  // 8×6 takes the dense operators, 40×30 (over DENSE_SPECTRA_MAX_PIXELS) the DFT.
  test.each([
    [2, 8, 6, 3],
    [1, 40, 30, 1],
    [1, 40, 30, 3],
  ])(
    'per-channel images [%i, %i, %i, %i]: low-pass and high-frequency shares match the per-plane functions',
    async (n, h, w, c) => {
      const v = randomValues(n * h * w * c, 21);
      const x = tf.tensor4d(v, [n, h, w, c]);
      const planes = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [n * c, h, w]) as tf.Tensor3D;
      const filtered = (await lowPassImages(x, 0.2, 'gaussian').data()) as Float32Array;
      const expected = (await tf
        .clipByValue(tf.transpose(tf.reshape(lowPass(planes, 0.2, 'gaussian'), [n, c, h, w]), [0, 2, 3, 1]), 0, 1)
        .data()) as Float32Array;
      filtered.forEach((f, i) => expect(f).toBeCloseTo(expected[i], 4));
      const shares = (await highFrequencyShareImages(x, [0.1, 0.3]).data()) as Float32Array; // [N, K, C']
      // The sieve's planes: each channel, and for RGB then its luminance (Rec. 601), computed here apart.
      const cs = c === 3 ? 4 : c;
      const sieve = new Float32Array(n * cs * h * w);
      for (let i = 0; i < n; i++)
        for (let p = 0; p < h * w; p++)
          for (let ch = 0; ch < cs; ch++) {
            const px = (i * h * w + p) * c;
            sieve[(i * cs + ch) * h * w + p] =
              ch < c ? v[px + ch] : 0.299 * v[px] + 0.587 * v[px + 1] + 0.114 * v[px + 2];
          }
      const sievePlanes = tf.tensor3d(sieve, [n * cs, h, w]);
      expect(shares.length).toBe(n * 2 * cs);
      for (const [k, cut] of [0.1, 0.3].entries()) {
        const perPlane = (await highFrequencyShare(sievePlanes, cut).data()) as Float32Array; // [N·C']
        for (let i = 0; i < n; i++)
          for (let ch = 0; ch < cs; ch++) expect(shares[(i * 2 + k) * cs + ch]).toBeCloseTo(perPlane[i * cs + ch], 4);
      }
    },
  );

  test.each([
    [2, 8, 6, 3],
    [2, 40, 30, 3],
  ])(
    'spectralExtras on [%i, %i, %i, %i] (one DFT for both above the dense size) = the two functions apart',
    async (n, h, w, c) => {
      const x = tf.tensor4d(randomValues(n * h * w * c, 23), [n, h, w, c]);
      const both = spectralExtras(x, [0.15, 0.35], { radius: 0.3, kind: 'ideal' });
      const [share, filtered] = await Promise.all([both.hfShare!.data(), both.filtered!.data()]);
      const shareApart = await highFrequencyShareImages(x, [0.15, 0.35]).data();
      const filteredApart = await lowPassImages(x, 0.3, 'ideal').data();
      expect(both.hfShare!.shape).toEqual([n, 2, c === 3 ? 4 : c]); // RGB: and luminance
      share.forEach((v, i) => expect(v).toBeCloseTo(shareApart[i], 5));
      filtered.forEach((v, i) => expect(v).toBeCloseTo(filteredApart[i], 5));
      expect(spectralExtras(x, [], undefined)).toEqual({ hfShare: undefined, filtered: undefined });
    },
  );

  // 96 = 8 · 12 ≥ FACTORED_DFT_MIN: the columns take the two-stage (Cooley–Tukey) transform, forward
  // and inverse; checked against the DFT's definition summed here in plain JS.
  test('factored column transforms: power spectrum and ideal low-pass of a 96×70 image = the definition', async () => {
    const [h, w] = [96, 70];
    expect(h).toBeGreaterThanOrEqual(FACTORED_DFT_MIN);
    const v = randomValues(h * w, 31);
    const re = new Float64Array(h * w);
    const im = new Float64Array(h * w);
    // Separable: along rows, then columns.
    const rowsRe = new Float64Array(h * w);
    const rowsIm = new Float64Array(h * w);
    for (let y = 0; y < h; y++)
      for (let k = 0; k < w; k++)
        for (let x = 0; x < w; x++) {
          const a = (-2 * Math.PI * k * x) / w;
          rowsRe[y * w + k] += v[y * w + x] * Math.cos(a);
          rowsIm[y * w + k] += v[y * w + x] * Math.sin(a);
        }
    for (let k = 0; k < h; k++)
      for (let c = 0; c < w; c++)
        for (let y = 0; y < h; y++) {
          const a = (-2 * Math.PI * k * y) / h;
          const [cr, ci] = [Math.cos(a), Math.sin(a)];
          re[k * w + c] += rowsRe[y * w + c] * cr - rowsIm[y * w + c] * ci;
          im[k * w + c] += rowsRe[y * w + c] * ci + rowsIm[y * w + c] * cr;
        }
    const power = (await powerSpectrum(tf.tensor3d(v, [1, h, w])).data()) as Float32Array;
    power.forEach((p, i) => expect(p).toBeCloseTo((re[i] ** 2 + im[i] ** 2) / (h * w), 2));
    // Ideal low-pass at 0.2 cycles/pixel: keep the bins within, invert by the definition.
    const mask = lowPassMask(h, w, 0.2, 'ideal');
    const filtered = (await lowPassImages(tf.tensor4d(v, [1, h, w, 1]), 0.2, 'ideal').data()) as Float32Array;
    const keptRows = new Float64Array(h * w * 2); // inverse along columns first
    for (let y = 0; y < h; y++)
      for (let c = 0; c < w; c++)
        for (let k = 0; k < h; k++) {
          if (!mask[k * w + c]) continue;
          const a = (2 * Math.PI * k * y) / h;
          const [cr, ci] = [Math.cos(a), Math.sin(a)];
          keptRows[(y * w + c) * 2] += re[k * w + c] * cr - im[k * w + c] * ci;
          keptRows[(y * w + c) * 2 + 1] += re[k * w + c] * ci + im[k * w + c] * cr;
        }
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        let sum = 0;
        for (let c = 0; c < w; c++) {
          const a = (2 * Math.PI * c * x) / w;
          sum += keptRows[(y * w + c) * 2] * Math.cos(a) - keptRows[(y * w + c) * 2 + 1] * Math.sin(a);
        }
        expect(filtered[y * w + x]).toBeCloseTo(Math.min(1, Math.max(0, sum / (h * w))), 4);
      }
  });

  test('Parseval: the power spectrum sums to the sum of squared pixels', async () => {
    const v = randomValues(16 * 16, 9);
    const p = (await powerSpectrum(tf.tensor3d(v, [1, 16, 16])).data()) as Float32Array;
    const energy = v.reduce((s, x) => s + x * x, 0);
    expect(p.reduce((s, x) => s + x, 0)).toBeCloseTo(energy, 2);
  });
});

test('radial frequency grid: 0 at DC, 0.5 at an axis Nyquist bin, √0.5 at the corner, symmetric', () => {
  const r = radialFrequencyGrid(8, 8);
  expect(r[0]).toBe(0);
  expect(r[4]).toBeCloseTo(0.5);
  expect(r[4 * 8 + 4]).toBeCloseTo(Math.SQRT1_2);
  expect(r[1]).toBeCloseTo(r[7]);
  expect(r[8]).toBeCloseTo(r[7 * 8]);
});

test('low-pass masks: ideal is a disc, gaussian falls off with the radius, a bad radius is named', () => {
  const ideal = lowPassMask(8, 8, 0.25, 'ideal');
  expect(ideal[0]).toBe(1);
  expect(ideal[2]).toBe(1); // f = 0.25
  expect(ideal[3]).toBe(0); // f = 0.375
  const g = lowPassMask(8, 8, 0.25, 'gaussian');
  expect(g[0]).toBe(1);
  expect(g[2]).toBeCloseTo(Math.exp(-0.5));
  expect(() => lowPassMask(8, 8, 0)).toThrow(/radius must be > 0/);
});

test('dft2d and idft2d leak no tensors', () => {
  const x = tf.tensor3d(randomValues(4 * 28 * 28, 1), [4, 28, 28]);
  // Builds the cached DFT matrices once (full, and the half spectrum's for the low-pass).
  tf.dispose([...Object.values(dft2d(x)), lowPass(x, 0.2, 'gaussian')]);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 20; i++) {
    const f = dft2d(x);
    tf.dispose([idft2d(f), f.re, f.im, powerSpectrum(x), lowPass(x, 0.2, 'gaussian')]);
  }
  expect(tf.memory().numTensors).toBe(before);
});
