/**
 * Activation distance to the class expectation: at each layer, the Euclidean distance of the
 * image's activation to μ(layer, predicted class), divided by the mean distance of clean training
 * images of that class to the same expectation. The layers are weighed by a logistic regression
 * on clean and adversarial training images, as Lee et al. (2018) weigh theirs (the plain mean
 * when calibration has no attacks to fit on); the score is the regression's logit. A clean image sits near its class's expectation at every layer; an adversarial one is
 * predicted as a class whose expectation its early layers are still far from (the feature
 * trajectory of "Interpreting adversarial examples ... activation promotion and suppression",
 * and of class-conditional detectors such as Ma et al. 2019, "NIC").
 */
import { ClassExpectations, classExpectations } from './classExpectations';
import { CombinedState, fitLayerWeights, layerScore, layerScoreTensor } from './combined';
import * as tf from '@tensorflow/tfjs';
import {
  argmax,
  classRows,
  byClassOrPooled,
  Detector,
  FitData,
  ImageFeatures,
  squaredDistance,
  stateTensors,
} from './detector';

export interface ActivationDistanceState {
  readonly layers: readonly string[];
  readonly expectations: ClassExpectations;
  /** Per layer, per class: mean clean distance to the class's expectation. */
  readonly scale: Readonly<Record<string, number[]>>;
  /** Weights of the layers' ratios; absent: their mean. */
  readonly layerWeights?: CombinedState;
}

function perLayer(state: Omit<ActivationDistanceState, 'layerWeights'>, f: ImageFeatures): number[] {
  const c = argmax(f.probs);
  return state.layers.map(
    (layer) => Math.sqrt(squaredDistance(f.activations[layer], state.expectations[layer][c])) / state.scale[layer][c],
  );
}

export const activationDistance: Detector<ActivationDistanceState> = {
  name: 'activationDistance',
  description:
    'distance to the predicted class expectation, per layer, relative to clean images of that class (mean over layers)',
  fit(data: FitData): ActivationDistanceState {
    const layers = Object.keys(data.clean[0].activations);
    const acts = data.clean.map((f) => f.activations);
    const expectations = classExpectations(acts, data.labels, layers, data.numClasses);
    const groups = byClassOrPooled(data.labels, data.numClasses);
    const scale: Record<string, number[]> = {};
    for (const layer of layers) {
      scale[layer] = groups.map((members, c) => {
        const d = members.map((i) => Math.sqrt(squaredDistance(acts[i][layer], expectations[layer][c])));
        return Math.max(d.reduce((a, b) => a + b, 0) / Math.max(d.length, 1), 1e-9);
      });
    }
    const fitted = { layers, expectations, scale };
    return { ...fitted, layerWeights: fitLayerWeights(layers, fitted, data, perLayer) };
  },
  score(state, f) {
    const ratios = perLayer(state, f);
    return layerScore(state.layerWeights, ratios);
  },
  scoreTensor(state, batch, classes) {
    const c = stateTensors(constants, state, () =>
      Object.fromEntries(
        state.layers.map((l) => [l, { mu: tf.tensor2d(state.expectations[l]), scale: tf.tensor1d(state.scale[l]) }]),
      ),
    );
    return tf.tidy(() => {
      const idx = classes;
      const perLayer = state.layers.map((l) => {
        const diff = tf.sub(batch.activations[l], classRows(c[l].mu, idx));
        // +1e-12 inside the root: its gradient at exactly zero distance would be infinite.
        return tf.div(tf.sqrt(tf.add(tf.sum(tf.square(diff), 1), 1e-12)), classRows(c[l].scale, idx));
      });
      return layerScoreTensor(state.layerWeights, perLayer as tf.Tensor1D[]);
    });
  },
};

const constants = new WeakMap<
  ActivationDistanceState,
  Map<string, Record<string, { mu: tf.Tensor2D; scale: tf.Tensor1D }>>
>();
