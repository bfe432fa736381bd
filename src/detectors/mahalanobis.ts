/**
 * Mahalanobis distance to the predicted class (Lee et al. 2018, "A simple unified framework for
 * detecting out-of-distribution samples and adversarial attacks"): class-conditional Gaussians
 * with one covariance per layer shared by the classes (tied, as in LDA), so the distance weighs
 * each direction by how much clean images vary along it. Per layer, (a − μ_c)ᵀ Σ⁻¹ (a − μ_c)
 * for the predicted class c, divided by its mean over clean training images; the layers are
 * weighed by a logistic regression on clean and adversarial training images, as Lee et al. do
 * (the plain mean when calibration has no attacks to fit on).
 * Σ is shrunk towards its mean eigenvalue (Ledoit-Wolf style, fixed 1 %) so that it stays
 * invertible for layers with dead units.
 */
import { CholeskyDecomposition, Matrix } from 'ml-matrix';
import { classExpectations, ClassExpectations } from './classExpectations';
import * as tf from '@tensorflow/tfjs';
import { CombinedState, fitLayerWeights, layerScore, layerScoreTensor } from './combined';
import { argmax, classRows, Detector, FitData, ImageFeatures, stateTensors } from './detector';

export interface MahalanobisState {
  readonly layers: readonly string[];
  readonly expectations: ClassExpectations;
  /** Per layer: the inverse of the shared covariance, row-major width × width. */
  readonly precision: Readonly<Record<string, number[]>>;
  /** Per layer: mean squared Mahalanobis distance of clean images to their class. */
  readonly scale: Readonly<Record<string, number>>;
  /** Weights of the layers' scores; absent: their mean. */
  readonly layerWeights?: CombinedState;
}

function perLayer(state: Omit<MahalanobisState, 'layerWeights'>, f: ImageFeatures): number[] {
  const c = argmax(f.probs);
  return state.layers.map(
    (layer) =>
      quadraticForm(f.activations[layer], state.expectations[layer][c], state.precision[layer]) / state.scale[layer],
  );
}

const SHRINKAGE = 0.01;

/** (a − μ)ᵀ P (a − μ) over the first μ.length values of `a`, P row-major and symmetric. */
export function quadraticForm(a: ArrayLike<number>, mu: readonly number[], precision: readonly number[]): number {
  const d = mu.length;
  const diff = new Float64Array(d);
  for (let i = 0; i < d; i++) diff[i] = a[i] - mu[i];
  let total = 0;
  for (let i = 0, o = 0; i < d; i++, o += d) {
    // Four accumulators: independent additions pipeline (this runs for every screened image).
    let r0 = 0;
    let r1 = 0;
    let r2 = 0;
    let r3 = 0;
    let j = 0;
    for (; j + 3 < d; j += 4) {
      r0 += precision[o + j] * diff[j];
      r1 += precision[o + j + 1] * diff[j + 1];
      r2 += precision[o + j + 2] * diff[j + 2];
      r3 += precision[o + j + 3] * diff[j + 3];
    }
    for (; j < d; j++) r0 += precision[o + j] * diff[j];
    total += diff[i] * (r0 + r1 + r2 + r3);
  }
  return total;
}

/**
 * The inverse of the covariance of `vectors` around their classes' means `mu` (row-major), shared
 * by the classes and shrunk as SHRINKAGE says; `what` names the features in its error.
 */
function sharedPrecision(
  vectors: ReadonlyArray<ArrayLike<number>>,
  labels: ArrayLike<number>,
  mu: readonly (readonly number[])[],
  what: string,
): number[] {
  const d = mu[0].length;
  const cov = new Float64Array(d * d);
  const diff = new Float64Array(d);
  vectors.forEach((a, n) => {
    const m = mu[labels[n]];
    for (let i = 0; i < d; i++) diff[i] = a[i] - m[i];
    for (let i = 0; i < d; i++) {
      const di = diff[i];
      if (di === 0) continue;
      for (let j = i; j < d; j++) cov[i * d + j] += di * diff[j];
    }
  });
  const count = vectors.length;
  let trace = 0;
  for (let i = 0; i < d; i++) trace += cov[i * d + i] / count;
  const ridge = SHRINKAGE * (trace / d) + 1e-9;
  const m = Matrix.zeros(d, d);
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      const v = (1 - SHRINKAGE) * (cov[i * d + j] / count) + (i === j ? ridge : 0);
      m.set(i, j, v);
      m.set(j, i, v);
    }
  }
  const chol = new CholeskyDecomposition(m);
  if (!chol.isPositiveDefinite()) throw new Error(`covariance of ${what} is not positive definite`);
  return Array.from(chol.solve(Matrix.eye(d, d)).to1DArray());
}

/**
 * Class-conditional Gaussians with one covariance shared by the classes, for `vectors` of classes
 * `labels` around their classes' means `mu`: the shared precision, and the scale a distance is read
 * in (the mean squared distance of the vectors to their own class, at least 1e-9).
 */
export function sharedGaussian(
  vectors: ReadonlyArray<ArrayLike<number>>,
  labels: ArrayLike<number>,
  mu: readonly (readonly number[])[],
  what: string,
): { precision: number[]; scale: number } {
  const precision = sharedPrecision(vectors, labels, mu, what);
  let sum = 0;
  vectors.forEach((a, n) => (sum += quadraticForm(a, mu[labels[n]], precision)));
  return { precision, scale: Math.max(sum / vectors.length, 1e-9) };
}

export const mahalanobis: Detector<MahalanobisState> = {
  name: 'mahalanobis',
  description:
    'Mahalanobis distance (shared covariance per layer) to the predicted class, relative to clean images (mean over layers)',
  fit(data: FitData): MahalanobisState {
    const layers = Object.keys(data.clean[0].activations);
    const expectations = classExpectations(
      data.clean.map((f) => f.activations),
      data.labels,
      layers,
      data.numClasses,
    );
    const precision: Record<string, number[]> = {};
    const scale: Record<string, number> = {};
    for (const layer of layers) {
      const gaussian = sharedGaussian(
        data.clean.map((f) => f.activations[layer]),
        data.labels,
        expectations[layer],
        `layer ${layer}`,
      );
      precision[layer] = gaussian.precision;
      scale[layer] = gaussian.scale;
    }
    const fitted = { layers, expectations, precision, scale };
    return { ...fitted, layerWeights: fitLayerWeights(layers, fitted, data, perLayer) };
  },
  score(state, f) {
    const scores = perLayer(state, f);
    return layerScore(state.layerWeights, scores);
  },
  scoreTensor(state, batch, classes) {
    const c = stateTensors(constants, state, () =>
      Object.fromEntries(
        state.layers.map((l) => {
          const d = state.expectations[l][0].length;
          return [l, { mu: tf.tensor2d(state.expectations[l]), precision: tf.tensor2d(state.precision[l], [d, d]) }];
        }),
      ),
    );
    return tf.tidy(() => {
      const idx = classes;
      const perLayer = state.layers.map((l) => {
        const diff = tf.sub(batch.activations[l], classRows(c[l].mu, idx));
        // Σ⁻¹ is symmetric, so diff·Σ⁻¹ needs no transposed operand.
        return tf.div(tf.sum(tf.mul(tf.matMul(diff, c[l].precision), diff), 1), state.scale[l]);
      });
      return layerScoreTensor(state.layerWeights, perLayer as tf.Tensor1D[]);
    });
  },
};

const constants = new WeakMap<
  MahalanobisState,
  Map<string, Record<string, { mu: tf.Tensor2D; precision: tf.Tensor2D }>>
>();
