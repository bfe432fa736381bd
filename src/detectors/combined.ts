/**
 * The combined verdict: one score from the detectors' scores, by logistic regression on clean and
 * adversarial *training* images (the feature ensemble of Lee et al. 2018). Each score is first
 * standardised on clean images (median and interquartile range, robust to the long tails) and
 * compressed with sign·log(1 + |z|), so that an attack that sends one detector to a million does
 * not dominate the fit. The combined score is the regression's logit, not its probability: a
 * probability saturates at 1 and ties would blur the ranking that thresholds and AUROC rely on.
 */
import * as tf from '@tensorflow/tfjs';
import { Matrix, solve } from 'ml-matrix';

export interface CombinedState {
  readonly detectors: readonly string[];
  readonly center: number[];
  readonly spread: number[];
  readonly weights: number[];
  readonly bias: number;
}

const L2 = 1e-3;

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))))];
}

function transform(state: Pick<CombinedState, 'center' | 'spread'>, scores: readonly number[]): number[] {
  return scores.map((s, k) => {
    const z = (s - state.center[k]) / state.spread[k];
    return Math.sign(z) * Math.log1p(Math.abs(z));
  });
}

/** Fits the regression by Newton's method (a handful of features: the Hessian is tiny), classes weighted equally. */
export function fitCombined(
  detectors: readonly string[],
  clean: readonly number[][],
  adversarial: readonly number[][],
): CombinedState {
  if (!clean.length || !adversarial.length) throw new Error('the combined detector needs clean and adversarial scores');
  const k = detectors.length;
  const center: number[] = [];
  const spread: number[] = [];
  for (let j = 0; j < k; j++) {
    const col = clean.map((r) => r[j]).sort((a, b) => a - b);
    center.push(quantile(col, 0.5));
    spread.push(Math.max(quantile(col, 0.75) - quantile(col, 0.25), 1e-6));
  }
  const rows = [...clean, ...adversarial].map((r) => [...transform({ center, spread }, r), 1]);
  const y = [...clean.map(() => 0), ...adversarial.map(() => 1)];
  const weight = [...clean.map(() => 0.5 / clean.length), ...adversarial.map(() => 0.5 / adversarial.length)];
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

/** The combined score of one image from its detectors' scores (in `state.detectors` order). */
export function combinedScore(state: CombinedState, scores: readonly number[]): number {
  return transform(state, scores).reduce((s, v, j) => s + v * state.weights[j], state.bias);
}

/** combinedScore on a batch, differentiable: `scores` in `state.detectors` order, each [N]. */
export function combinedScoreTensor(state: CombinedState, scores: readonly tf.Tensor1D[]): tf.Tensor1D {
  return tf.tidy(() => {
    const terms = scores.map((s, k) => {
      const z = tf.div(tf.sub(s, state.center[k]), state.spread[k]);
      return tf.mul(tf.mul(tf.sign(z), tf.log1p(tf.abs(z))), state.weights[k]);
    });
    return tf.add(tf.addN(terms), state.bias) as tf.Tensor1D;
  });
}

/**
 * Per-layer scores to one score, for detectors that measure at several layers: the layers weighed
 * by a regression fitted at calibration (Lee et al. 2018), or their mean when there was none.
 */
export function layerScore(weights: CombinedState | undefined, scores: readonly number[]): number {
  return weights ? combinedScore(weights, scores) : scores.reduce((a, b) => a + b, 0) / scores.length;
}

/** layerScore on a batch, differentiable: one [N] tensor per layer. */
export function layerScoreTensor(weights: CombinedState | undefined, scores: readonly tf.Tensor1D[]): tf.Tensor1D {
  return weights ? combinedScoreTensor(weights, scores) : tf.tidy(() => tf.div(tf.addN([...scores]), scores.length));
}
