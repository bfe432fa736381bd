/**
 * The combined verdict: one score from the detectors' scores, by logistic regression on clean and
 * adversarial *training* images (the feature ensemble of Lee et al. 2018), optionally with a small
 * ReLU layer beside the linear part. The detectors are complementary — Mahalanobis separates PGD
 * almost perfectly, low-pass disagreement CW-L2, and each is noise on the other's attack — and a
 * linear sum cannot say "either one"; the hidden units can, and they start at zero so that the
 * fit starts from the regression and departs from it only where the data pays. Each score is first
 * standardised on clean images (median and interquartile range, robust to the long tails) and
 * compressed with sign·log(1 + |z|), so that an attack that sends one detector to a million does
 * not dominate the fit. The combined score is the regression's logit, not its probability: a
 * probability saturates at 1 and ties would blur the ranking that thresholds and AUROC rely on.
 */
import * as tf from '@tensorflow/tfjs';
import { Matrix, solve } from 'ml-matrix';
import { mulberry32 } from '../train/random';
import type { ImageFeatures } from './detector';

export interface CombinedState {
  readonly detectors: readonly string[];
  readonly center: number[];
  readonly spread: number[];
  /** The linear part: one weight per detector, and the bias. */
  readonly weights: number[];
  readonly bias: number;
  /** Hidden ReLU units added to the linear part: score += Σ_h out[h]·relu(Σ_j in[h][j]·t_j + bias[h]). */
  readonly hidden?: { readonly in: number[][]; readonly bias: number[]; readonly out: number[] };
  /** "Either one" terms beside the regression (see UnionTerm); the score is the largest of them all. */
  readonly union?: CombinedUnion;
}

/**
 * A detector that also flags alone: the score becomes max(regression, level + (s − at) / scale).
 * A regression (hidden units or not) weighs a detector by how it separates the attacks it was fitted
 * on, all mixed; an attack that only one detector sees — minimal-confidence CW, which stops on the
 * decision boundary where the boundary margin alone sees it — is diluted by the others' noise. A
 * term maps the detector's clean quantile at its share of the target rate (`at`) onto the
 * regression's at the rest (`level`), so that at the target rate the verdict flags when either one
 * is past its own share; one clean spread of the detector counts as one of the regression (`scale`).
 * The thresholds are still read on the combined score itself, so any rate holds on clean images.
 */
export interface UnionTerm {
  /** The detector, by its index in `detectors`. */
  readonly input: number;
  readonly at: number;
  readonly scale: number;
  /** Its share of the target rate when it was fitted (a record: the score needs only `at` and `scale`). */
  readonly share: number;
}

export interface CombinedUnion {
  readonly level: number;
  readonly terms: readonly UnionTerm[];
}

const L2 = 1e-3;

function quantile(sorted: ArrayLike<number>, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))))];
}

/**
 * A score's clean spread, the unit the verdict standardises it by: the interquartile range of its
 * clean scores (`sorted` ascending), at least 1e-6 (and that floor when there are none).
 */
export function interquartileRange(sorted: ArrayLike<number>): number {
  if (!sorted.length) return 1e-6;
  return Math.max(quantile(sorted, 0.75) - quantile(sorted, 0.25), 1e-6);
}

function transform(state: Pick<CombinedState, 'center' | 'spread'>, scores: readonly number[]): number[] {
  return scores.map((s, k) => {
    const z = (s - state.center[k]) / state.spread[k];
    return Math.sign(z) * Math.log1p(Math.abs(z));
  });
}

/**
 * Fits the regression by Newton's method (a handful of features: the Hessian is tiny), classes
 * weighted equally; with `hidden` units, then trains those beside it (fitHidden).
 */
export function fitCombined(
  detectors: readonly string[],
  clean: readonly number[][],
  adversarial: readonly number[][],
  options: { hidden?: number; seed?: number; adversarialWeights?: readonly number[] } = {},
): CombinedState {
  if (!clean.length || !adversarial.length) throw new Error('the combined detector needs clean and adversarial scores');
  const weight = rowWeights(clean.length, adversarial.length, options.adversarialWeights);
  const linear = fitLinear(detectors, clean, adversarial, weight);
  return options.hidden ? fitHidden(linear, clean, adversarial, weight, options.hidden, options.seed ?? 1) : linear;
}

/**
 * Each row's weight in the fit: the two classes weigh ½ each; clean rows equally, adversarial rows
 * in proportion to `adversarialWeights` (equally without them): hardening (src/calibration/
 * hardening.ts) gives each round's few adaptive attacks the weight of all the others together.
 */
function rowWeights(clean: number, adversarial: number, relative?: readonly number[]): number[] {
  if (relative && (relative.length !== adversarial || !relative.every((w) => w >= 0 && Number.isFinite(w))))
    throw new RangeError(`adversarialWeights: expected ${adversarial} finite weights ≥ 0`);
  const total = relative ? relative.reduce((a, b) => a + b, 0) : adversarial;
  if (!(total > 0)) throw new RangeError('adversarialWeights: expected a positive total');
  return [
    ...new Array<number>(clean).fill(0.5 / clean),
    ...(relative ?? new Array<number>(adversarial).fill(1)).map((w) => (0.5 * w) / total),
  ];
}

function fitLinear(
  detectors: readonly string[],
  clean: readonly number[][],
  adversarial: readonly number[][],
  weight: readonly number[],
): CombinedState {
  const k = detectors.length;
  const center: number[] = [];
  const spread: number[] = [];
  for (let j = 0; j < k; j++) {
    const col = clean.map((r) => r[j]).sort((a, b) => a - b);
    center.push(quantile(col, 0.5));
    spread.push(interquartileRange(col));
  }
  const rows = [...clean, ...adversarial].map((r) => [...transform({ center, spread }, r), 1]);
  const y = [...clean.map(() => 0), ...adversarial.map(() => 1)];
  let beta = new Array(k + 1).fill(0);
  for (let iter = 0; iter < 50; iter++) {
    const grad = new Array(k + 1).fill(0);
    const hess = Matrix.zeros(k + 1, k + 1);
    rows.forEach((x, n) => {
      const p = 1 / (1 + Math.exp(-x.reduce((s, v, j) => s + v * beta[j], 0)));
      for (let a = 0; a <= k; a++) {
        grad[a] += weight[n] * (p - y[n]) * x[a];
        for (let b = 0; b <= k; b++) hess.set(a, b, hess.get(a, b) + weight[n] * p * (1 - p) * x[a] * x[b]);
      }
    });
    for (let a = 0; a < k; a++) {
      grad[a] += L2 * beta[a];
      hess.set(a, a, hess.get(a, a) + L2);
    }
    const step = solve(hess, Matrix.columnVector(grad)).to1DArray();
    beta = beta.map((b, j) => b - step[j]);
    if (Math.max(...step.map(Math.abs)) < 1e-8) break;
  }
  return { detectors: [...detectors], center, spread, weights: beta.slice(0, k), bias: beta[k] };
}

/** The score of transformed inputs t: the linear part plus the hidden units. */
function scoreOf(state: Omit<CombinedState, 'detectors' | 'center' | 'spread'>, t: readonly number[]): number {
  let score = t.reduce((s, v, j) => s + v * state.weights[j], state.bias);
  const h = state.hidden;
  if (h) {
    for (let u = 0; u < h.out.length; u++) {
      const a = t.reduce((s, v, j) => s + v * h.in[u][j], h.bias[u]);
      if (a > 0) score += h.out[u] * a;
    }
  }
  return score;
}

/**
 * Trains hidden ReLU units beside a fitted regression: full-batch Adam on the class-weighted
 * cross-entropy with L2 on every parameter but the bias; the output weights start at zero, so training starts
 * from the regression's solution. Seeded: the same data gives the same state.
 */
function fitHidden(
  linear: CombinedState,
  clean: readonly number[][],
  adversarial: readonly number[][],
  weight: readonly number[],
  units: number,
  seed: number,
): CombinedState {
  const random = mulberry32(seed);
  const k = linear.detectors.length;
  const rows = [...clean, ...adversarial].map((r) => transform(linear, r));
  const y = [...clean.map(() => 0), ...adversarial.map(() => 1)];
  // Parameters as one flat vector: linear weights, bias, hidden in-weights, hidden biases, out-weights.
  const nIn = units * k;
  const p = new Float64Array(k + 1 + nIn + 2 * units);
  linear.weights.forEach((w, j) => (p[j] = w));
  p[k] = linear.bias;
  for (let i = 0; i < nIn; i++) p[k + 1 + i] = (random() * 2 - 1) / Math.sqrt(k);
  const view = () => ({
    weights: Array.from(p.subarray(0, k)),
    bias: p[k],
    hidden: {
      in: Array.from({ length: units }, (_, u) => Array.from(p.subarray(k + 1 + u * k, k + 1 + (u + 1) * k))),
      bias: Array.from(p.subarray(k + 1 + nIn, k + 1 + nIn + units)),
      out: Array.from(p.subarray(k + 1 + nIn + units)),
    },
  });
  const m = new Float64Array(p.length);
  const v = new Float64Array(p.length);
  const rate = 0.01;
  for (let step = 1; step <= 1500; step++) {
    const g = new Float64Array(p.length);
    rows.forEach((t, n) => {
      const act = new Float64Array(units);
      let score = p[k];
      for (let j = 0; j < k; j++) score += p[j] * t[j];
      for (let u = 0; u < units; u++) {
        let a = p[k + 1 + nIn + u];
        for (let j = 0; j < k; j++) a += p[k + 1 + u * k + j] * t[j];
        act[u] = Math.max(a, 0);
        score += p[k + 1 + nIn + units + u] * act[u];
      }
      const d = weight[n] * (1 / (1 + Math.exp(-score)) - y[n]);
      for (let j = 0; j < k; j++) g[j] += d * t[j];
      g[k] += d;
      for (let u = 0; u < units; u++) {
        const out = p[k + 1 + nIn + units + u];
        g[k + 1 + nIn + units + u] += d * act[u];
        if (act[u] <= 0) continue;
        g[k + 1 + nIn + u] += d * out;
        for (let j = 0; j < k; j++) g[k + 1 + u * k + j] += d * out * t[j];
      }
    });
    for (let i = 0; i < p.length; i++) {
      if (i < k || i >= k + 1) g[i] += L2 * p[i];
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
      p[i] -= (rate * (m[i] / (1 - 0.9 ** step))) / (Math.sqrt(v[i] / (1 - 0.999 ** step)) + 1e-8);
    }
  }
  return { ...linear, ...view() };
}

/** The combined score of one image from its detectors' scores (in `state.detectors` order). */
export function combinedScore(state: CombinedState, scores: readonly number[]): number {
  const regression = scoreOf(state, transform(state, scores));
  const union = state.union;
  if (!union) return regression;
  return union.terms.reduce((m, u) => Math.max(m, union.level + (scores[u.input] - u.at) / u.scale), regression);
}

/** combinedScore on a batch, differentiable: `scores` in `state.detectors` order, each [N]. */
export function combinedScoreTensor(state: CombinedState, scores: readonly tf.Tensor1D[]): tf.Tensor1D {
  return tf.tidy(() => {
    const t = tf.stack(
      scores.map((s, k) => {
        const z = tf.div(tf.sub(s, state.center[k]), state.spread[k]);
        return tf.mul(tf.sign(z), tf.log1p(tf.abs(z)));
      }),
      1,
    ) as tf.Tensor2D; // [N, k]
    let score = tf.add(tf.matMul(t, tf.tensor2d(state.weights, [state.weights.length, 1])), state.bias);
    const h = state.hidden;
    if (h) {
      // in: [units][k] → [k, units] as a constant, so the product needs no transposed operand.
      const inT = tf.tensor2d(h.in[0].map((_, j) => h.in.map((row) => row[j])));
      const act = tf.relu(tf.add(tf.matMul(t, inT), tf.tensor1d(h.bias)));
      score = tf.add(score, tf.matMul(act, tf.tensor2d(h.out, [h.out.length, 1])));
    }
    let flat = tf.reshape(score, [-1]) as tf.Tensor1D;
    const union = state.union;
    if (union) {
      for (const u of union.terms) {
        flat = tf.maximum(flat, tf.add(tf.div(tf.sub(scores[u.input], u.at), u.scale), union.level));
      }
    }
    return flat;
  });
}

/**
 * Per-layer scores to one score, for detectors that measure at several layers: the layers weighed
 * by a regression fitted at calibration (Lee et al. 2018), or their mean when there was none.
 */
export function layerScore(weights: CombinedState | undefined, scores: readonly number[]): number {
  return weights ? combinedScore(weights, scores) : scores.reduce((a, b) => a + b, 0) / scores.length;
}

/**
 * The layer weights of a multi-layer detector: a regression on its per-layer scores of clean and
 * adversarial training images, or none (the mean) when calibration has no attacks to fit on.
 */
export function fitLayerWeights<S>(
  layers: readonly string[],
  state: S,
  data: { clean: readonly ImageFeatures[]; adversarial: readonly ImageFeatures[] },
  perLayer: (state: S, f: ImageFeatures) => number[],
): CombinedState | undefined {
  if (!data.adversarial.length) return undefined;
  return fitCombined(
    layers,
    data.clean.map((f) => perLayer(state, f)),
    data.adversarial.map((f) => perLayer(state, f)),
  );
}

/** layerScore on a batch, differentiable: one [N] tensor per layer. */
export function layerScoreTensor(weights: CombinedState | undefined, scores: readonly tf.Tensor1D[]): tf.Tensor1D {
  return weights ? combinedScoreTensor(weights, scores) : tf.tidy(() => tf.div(tf.addN([...scores]), scores.length));
}
