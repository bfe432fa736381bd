/**
 * Reference datasets with a geometry set by hand: the controlled experiments of the "causes of
 * adversarial examples" study, where class separation, spread and intrinsic dimensionality are
 * switched one at a time and everything else (model, attacks, detectors) stays as it is.
 *
 * Each class is an isotropic Gaussian in a d-dimensional subspace of pixel space:
 *
 *   x = background + B (m_k + σ ε),   ε ~ N(0, I_d),
 *
 * B the 784 × d matrix of a fixed orthonormal basis of smooth images (the d lowest-frequency 2-D
 * DCT-II functions on 28 × 28, the constant one left out), m_k the class mean's coordinates. The
 * means are the vertices of a regular simplex — every pair exactly `separation` apart in pixel L2 —
 * turned by a seeded random rotation into the subspace, so no class sits on one basis image. Within
 * a class the spread is σ along each of the d directions and nothing outside them, so d is the
 * data's intrinsic dimensionality, and the Bayes boundary between two classes is their mean's
 * perpendicular bisector, `separation / 2` (L2) from each mean. Values are clipped to [0, 1]; the
 * share of clipped pixels is reported (clipping is the one place the geometry is not exact).
 * Rendered as 28 × 28 × 1 images in [0, 1], the sets are ImageSets: every model, attack and
 * detector runs on them unchanged.
 */
import type { ImageSet } from './fashionMnist';
import { mulberry32 } from '../train/random';

export const REFERENCE_HEIGHT = 28;
export const REFERENCE_WIDTH = 28;
const PIXELS = REFERENCE_HEIGHT * REFERENCE_WIDTH;

export interface ReferenceGeometry {
  /** Number of classes, 2 to 10 (the reference models have ten outputs). */
  readonly classes: number;
  /** Intrinsic dimensionality d: the subspace the classes live in (classes − 1 ≤ d ≤ 783). */
  readonly dimension: number;
  /** L2 distance between any two class means, in pixel units (values in [0, 1]). */
  readonly separation: number;
  /** Standard deviation within a class along each of the d directions. */
  readonly spread: number;
  /** Grey level of the images' common mean (0.5 leaves most room on both sides before clipping). */
  readonly background?: number;
}

export interface ReferenceDatasetOptions extends ReferenceGeometry {
  readonly trainCount: number;
  readonly testCount: number;
  readonly seed: number;
}

export interface ReferenceDataset {
  readonly geometry: Required<ReferenceGeometry>;
  readonly labels: readonly string[];
  readonly train: ImageSet;
  readonly test: ImageSet;
  /** d × 784, row r the r-th basis image (orthonormal rows). */
  readonly basis: Float32Array;
  /** classes × 784: each class's mean image before clipping (background included). */
  readonly means: Float32Array;
  /** Share of the pixels of both sets that were clipped into [0, 1]. */
  readonly clippedShare: number;
  /**
   * The L∞ budget that moves a class mean onto the Bayes boundary of its nearest rival, on average
   * over the pairs: separation / (2 ‖w‖₁), w the unit vector from one mean to the other (an L∞
   * perturbation of ε moves along w by at most ε ‖w‖₁). Against a model that learned the Bayes
   * boundary, an L∞ attack needs about this much from a typical image of the class.
   */
  readonly linfToBoundary: number;
}

/** Standard normal draws from a seeded uniform source (Box–Muller, both values used). */
export function gaussian(random: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    const u = Math.max(random(), 1e-12);
    const r = Math.sqrt(-2 * Math.log(u));
    const t = 2 * Math.PI * random();
    spare = r * Math.sin(t);
    return r * Math.cos(t);
  };
}

/**
 * The d smoothest 2-D DCT-II basis images of size h × w, without the constant one: ordered by
 * u + v (then u), each with unit L2 norm and orthogonal to the others. d × (h·w), row-major.
 */
export function smoothBasis(d: number, h = REFERENCE_HEIGHT, w = REFERENCE_WIDTH): Float32Array {
  if (!(Number.isInteger(d) && d >= 1 && d < h * w))
    throw new RangeError(`basis dimension: expected an integer in [1, ${h * w - 1}], got ${d}`);
  const frequencies: Array<[number, number]> = [];
  for (let s = 1; frequencies.length < d; s++)
    for (let u = Math.max(0, s - (w - 1)); u <= Math.min(s, h - 1); u++) frequencies.push([u, s - u]);
  const out = new Float32Array(d * h * w);
  frequencies.slice(0, d).forEach(([u, v], r) => {
    const cu = u === 0 ? Math.sqrt(1 / h) : Math.sqrt(2 / h);
    const cv = v === 0 ? Math.sqrt(1 / w) : Math.sqrt(2 / w);
    for (let y = 0; y < h; y++) {
      const fy = cu * Math.cos((Math.PI * (2 * y + 1) * u) / (2 * h));
      for (let x = 0; x < w; x++)
        out[r * h * w + y * w + x] = fy * cv * Math.cos((Math.PI * (2 * x + 1) * v) / (2 * w));
    }
  });
  return out;
}

/** A d × k matrix with orthonormal columns (k ≤ d), drawn seeded: Gram–Schmidt on Gaussian columns. */
function randomOrthonormal(d: number, k: number, normal: () => number): Float64Array[] {
  const columns: Float64Array[] = [];
  while (columns.length < k) {
    const c = Float64Array.from({ length: d }, normal);
    for (const q of columns) {
      const dot = c.reduce((s, v, i) => s + v * q[i], 0);
      for (let i = 0; i < d; i++) c[i] -= dot * q[i];
    }
    const norm = Math.hypot(...c);
    if (norm < 1e-6) continue; // a draw in the span already: draw again
    columns.push(c.map((v) => v / norm));
  }
  return columns;
}

/**
 * Coordinates (d values each) of `classes` points pairwise `separation` apart, centred at 0: the
 * regular simplex e_k − 1/K scaled by separation/√2, written in the Helmert basis of the hyperplane
 * ⟂ (1, …, 1) (K − 1 coordinates), then turned into d dimensions by a random orthonormal map.
 */
function simplexMeans(classes: number, d: number, separation: number, normal: () => number): Float64Array[] {
  const k = classes - 1;
  const rotation = randomOrthonormal(d, k, normal);
  const scale = separation / Math.SQRT2;
  return Array.from({ length: classes }, (_, c) => {
    // Helmert row j (1-based): (1, …, 1 [j times], −j, 0, …) / √(j(j+1)); e_c − 1/K has the same coordinates as e_c there.
    const helmert = Float64Array.from({ length: k }, (_, i) => {
      const j = i + 1;
      const entry = c < j ? 1 : c === j ? -j : 0;
      return entry / Math.sqrt(j * (j + 1));
    });
    const out = new Float64Array(d);
    for (let i = 0; i < k; i++) for (let r = 0; r < d; r++) out[r] += rotation[i][r] * helmert[i] * scale;
    return out;
  });
}

function checkGeometry(g: ReferenceDatasetOptions): void {
  const fail = (name: string, expected: string, got: number) => {
    throw new RangeError(`reference dataset ${name}: expected ${expected}, got ${got}`);
  };
  if (!(Number.isInteger(g.classes) && g.classes >= 2 && g.classes <= 10))
    fail('classes', 'an integer in [2, 10]', g.classes);
  if (!(Number.isInteger(g.dimension) && g.dimension >= g.classes - 1 && g.dimension < PIXELS))
    fail('dimension', `an integer in [${g.classes - 1}, ${PIXELS - 1}] (classes − 1 at least)`, g.dimension);
  if (!(g.separation > 0 && Number.isFinite(g.separation))) fail('separation', 'a finite number > 0', g.separation);
  if (!(g.spread >= 0 && Number.isFinite(g.spread))) fail('spread', 'a finite number ≥ 0', g.spread);
  const bg = g.background ?? 0.5;
  if (!(bg >= 0 && bg <= 1)) fail('background', 'a number in [0, 1]', bg);
  for (const [name, n] of [
    ['trainCount', g.trainCount],
    ['testCount', g.testCount],
  ] as const)
    if (!(Number.isInteger(n) && n >= g.classes)) fail(name, `an integer ≥ classes (${g.classes})`, n);
}

/** Mean over class pairs of separation / (2 ‖m_i − m_j‖₁ / separation): see ReferenceDataset.linfToBoundary. */
function linfBudgetToBoundary(means: Float32Array, classes: number, separation: number): number {
  let sum = 0;
  let pairs = 0;
  for (let i = 0; i < classes; i++)
    for (let j = i + 1; j < classes; j++) {
      let l1 = 0;
      for (let p = 0; p < PIXELS; p++) l1 += Math.abs(means[i * PIXELS + p] - means[j * PIXELS + p]);
      sum += separation / (2 * (l1 / separation));
      pairs++;
    }
  return sum / pairs;
}

/** Draws a set of `count` images, classes in turn (balanced), from the geometry's Gaussians. */
function drawSet(
  count: number,
  classes: number,
  basis: Float32Array,
  coordinates: Float64Array[],
  g: Required<ReferenceGeometry>,
  normal: () => number,
): { set: ImageSet; clipped: number } {
  const d = g.dimension;
  const pixels = new Float32Array(count * PIXELS);
  const labels = new Uint8Array(count);
  const z = new Float64Array(d);
  let clipped = 0;
  for (let n = 0; n < count; n++) {
    const k = n % classes;
    labels[n] = k;
    for (let r = 0; r < d; r++) z[r] = coordinates[k][r] + g.spread * normal();
    const image = new Float64Array(PIXELS).fill(g.background);
    for (let r = 0; r < d; r++) {
      const row = basis.subarray(r * PIXELS, (r + 1) * PIXELS);
      for (let p = 0; p < PIXELS; p++) image[p] += z[r] * row[p];
    }
    for (let p = 0; p < PIXELS; p++) {
      const v = image[p];
      if (v < 0 || v > 1) clipped++;
      pixels[n * PIXELS + p] = Math.min(1, Math.max(0, v));
    }
  }
  return { set: { count, height: REFERENCE_HEIGHT, width: REFERENCE_WIDTH, pixels, labels }, clipped };
}

/** A reference dataset: train and test sets drawn from the same seeded geometry (disjoint draws). */
export function referenceDataset(opts: ReferenceDatasetOptions): ReferenceDataset {
  checkGeometry(opts);
  const geometry: Required<ReferenceGeometry> = {
    classes: opts.classes,
    dimension: opts.dimension,
    separation: opts.separation,
    spread: opts.spread,
    background: opts.background ?? 0.5,
  };
  const normal = gaussian(mulberry32(opts.seed));
  const basis = smoothBasis(geometry.dimension);
  const coordinates = simplexMeans(geometry.classes, geometry.dimension, geometry.separation, normal);
  const means = new Float32Array(geometry.classes * PIXELS).fill(geometry.background);
  coordinates.forEach((c, k) => {
    for (let r = 0; r < geometry.dimension; r++)
      for (let p = 0; p < PIXELS; p++) means[k * PIXELS + p] += c[r] * basis[r * PIXELS + p];
  });
  const train = drawSet(opts.trainCount, geometry.classes, basis, coordinates, geometry, normal);
  const test = drawSet(opts.testCount, geometry.classes, basis, coordinates, geometry, normal);
  return {
    geometry,
    labels: Array.from({ length: geometry.classes }, (_, k) => `class ${k}`),
    train: train.set,
    test: test.set,
    basis,
    means,
    clippedShare: (train.clipped + test.clipped) / ((opts.trainCount + opts.testCount) * PIXELS),
    linfToBoundary: linfBudgetToBoundary(means, geometry.classes, geometry.separation),
  };
}
