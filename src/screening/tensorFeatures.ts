/**
 * The screening features of a batch as a differentiable function of its pixels: what the adaptive
 * attack descends to slip under every detector's threshold (Carlini & Wagner 2017, "Adversarial
 * examples are not easily detected"; Athalye et al. 2018).
 */
import * as tf from '@tensorflow/tfjs';
import type { Calibration } from '../calibration/calibrationFile';
import type { TensorFeatures } from '../detectors/detector';
import type { InferenceModel } from '../engine/model';
import { highFrequencyShareImages, lowPassImages } from '../engine/spectra';

export function tensorFeatures(model: InferenceModel, x: tf.Tensor4D, calibration: Calibration): TensorFeatures {
  const { logits, activations } = model.forwardDifferentiable(x);
  const { radius, kind } = calibration.lowPass;
  return {
    logits,
    probs: model.probabilitiesOf(logits),
    activations,
    hfShare: (cutoff) => tf.reshape(highFrequencyShareImages(x, [cutoff]), [x.shape[0], -1]) as tf.Tensor2D,
    lowPassProbs: model.probabilities(lowPassImages(x, radius, kind)),
  };
}
