/**
 * Low-pass disagreement: the L1 distance between the model's probabilities for the image and for
 * its low-passed version, the low-pass defense used as a squeezer in the manner of Feature
 * Squeezing (Xu et al. 2018). Clean images keep their prediction when their high frequencies are
 * removed; an adversarial image whose perturbation lives in the high band loses it.
 */
import * as tf from '@tensorflow/tfjs';
import { Detector } from './detector';

export function l1(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s;
}

export const lowPassDisagreement: Detector<Record<string, never>> = {
  name: 'lowPassDisagreement',
  description: 'L1 distance between the probabilities before and after the low-pass defense',
  fit: () => ({}),
  score(_state, f) {
    if (!f.lowPassProbs) throw new Error('low-pass disagreement needs the probabilities of the low-passed image');
    return l1(f.probs, f.lowPassProbs);
  },
  scoreTensor: (_state, batch) =>
    tf.tidy(() => tf.sum(tf.abs(tf.sub(batch.probs, batch.lowPassProbs)), 1) as tf.Tensor1D),
};
