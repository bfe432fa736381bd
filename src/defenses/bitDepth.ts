/**
 * Bit-depth reduction, one of the two feature squeezers of Xu, Evans & Qi 2018, "Feature Squeezing:
 * Detecting Adversarial Examples in Deep Neural Networks" (NDSS): each value becomes
 * round(x·(2^b − 1)) / (2^b − 1). Their best settings were 1 bit for MNIST and 5 bits for CIFAR-10,
 * hence the defaults per channel count. tf.round rounds halves to even, as numpy.rint in their code.
 * Not differentiable (its gradient is zero almost everywhere): adaptive attacks approximate it by
 * the identity instead (BPDA, Athalye et al. 2018).
 */
import * as tf from '@tensorflow/tfjs';
import { checkImages, checkOption, Defense, isIntegerIn } from './defense';

export interface BitDepthOptions {
  /** Bits per value, 1 to 8. Default: 1 for grey images, 5 for colour ones (Xu et al. 2018). */
  readonly bits?: number;
}

export const DEFAULT_BITS_GREY = 1;
export const DEFAULT_BITS_COLOUR = 5;

export class BitDepthDefense implements Defense {
  readonly name = 'bitdepth' as const;
  /** The configured depth; undefined means the default for the images' channel count. */
  readonly bits: number | undefined;

  constructor(options: BitDepthOptions = {}) {
    const { bits } = options;
    checkOption(bits === undefined || isIntegerIn(bits, 1, 8), this.name, 'bits', 'an integer from 1 to 8', bits);
    this.bits = bits;
  }

  /** The depth used for images with c channels. */
  bitsFor(c: number): number {
    return this.bits ?? (c === 1 ? DEFAULT_BITS_GREY : DEFAULT_BITS_COLOUR);
  }

  async apply(x: tf.Tensor4D): Promise<tf.Tensor4D> {
    checkImages(this.name, x);
    const levels = 2 ** this.bitsFor(x.shape[3]) - 1;
    return tf.tidy(() => tf.div(tf.round(tf.mul(tf.clipByValue(x, 0, 1), levels)), levels) as tf.Tensor4D);
  }
}
