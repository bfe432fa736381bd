/**
 * Boundary margin: how close the image sits to the model's decision boundary, as the runner-up
 * logit minus the top one (0 on the boundary, very negative for a confident prediction). It is the
 * margin baseline of misclassification detection (Hendrycks & Gimpel 2017, on probabilities), here
 * aimed at one attack: minimal-confidence Carlini–Wagner (κ = 0) stops just past the boundary, where
 * few clean images sit, and moves the activations little enough that the other detectors miss it.
 *
 * It is half of a pair: an attacker who adds confidence to escape it (κ > 0) travels further from
 * the origin class, which the activation and density detectors see. The combined verdict weighs it
 * against them, and the end-to-end adaptive attack descends it with the rest.
 *
 * Optional (Detector.optional): calibrations made before it have no state and screen without it;
 * `calibrate --boundary-margin` fits it. It needs no state and no extra pass: the logits are there.
 */
import * as tf from '@tensorflow/tfjs';
import { ownAndBestOther } from '../engine/logitMargin';
import { Detector } from './detector';

/** z_runnerUp − z_top over the logits: ≤ 0, and 0 when the two top classes tie. */
export function negativeMargin(logits: ArrayLike<number>): number {
  let top = -Infinity;
  let second = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const z = logits[i];
    if (z > top) {
      second = top;
      top = z;
    } else if (z > second) second = z;
  }
  return second - top;
}

export const boundaryMargin: Detector<Record<string, never>> = {
  name: 'boundaryMargin',
  description:
    'runner-up logit minus the top logit: near 0 at the decision boundary, where minimal-confidence attacks stop',
  optional: true,
  fit: () => ({}),
  score: (_state, f) => negativeMargin(f.logits),
  // With the class held fixed at `classes`: max over the other classes minus that class's logit
  // (equal to score() when `classes` is the argmax, which is how the screener calls it).
  scoreTensor: (_state, batch, classes) =>
    tf.tidy(() => {
      const onehot = tf.oneHot(classes, batch.logits.shape[1]).toFloat() as tf.Tensor2D;
      const { own, other } = ownAndBestOther(batch.logits, onehot);
      return tf.sub(other, own) as tf.Tensor1D;
    }),
};
