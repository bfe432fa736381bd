/**
 * Feature Squeezing (Xu et al. 2018, "Feature squeezing: detecting adversarial examples in deep
 * neural networks"), the baseline detector of the evaluation report: the largest L1 distance
 * between the probabilities of the image and of each squeezed version (for grey images, as in the
 * paper's MNIST setting: 1-bit depth reduction and 2×2 median smoothing). The squeezed
 * probabilities are computed by the evaluation, not by the service.
 */
import { Detector } from './detector';
import { l1 } from './lowPassDisagreement';

export const featureSqueezing: Detector<Record<string, never>> = {
  name: 'featureSqueezing',
  description: 'largest L1 distance between the probabilities before and after each squeezer (bit depth, median)',
  fit: () => ({}),
  score(_state, f) {
    if (!f.squeezedProbs?.length) throw new Error('feature squeezing needs the probabilities of squeezed images');
    return Math.max(...f.squeezedProbs.map((p) => l1(f.probs, p)));
  },
  scoreTensor: () => {
    throw new Error('feature squeezing is a baseline of the report; adaptive attacks do not target it');
  },
};
