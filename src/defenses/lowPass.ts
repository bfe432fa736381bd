/**
 * Low-pass defense: keeps the low spatial frequencies of each channel and drops the rest, where
 * small L∞ perturbations put much of their energy (Guo et al. 2018, "Countering Adversarial Images
 * using Input Transformations"; Yin et al. 2019, "A Fourier Perspective on Model Robustness in
 * Computer Vision"). Linear before the clip, so adaptive attacks (Athalye et al. 2018) get its exact
 * gradient through applyDifferentiable.
 */
import * as tf from '@tensorflow/tfjs';
import { LowPassKind, lowPassImages } from '../engine/spectra';
import { checkImages, checkOption, Defense } from './defense';

export interface LowPassOptions {
  /**
   * Cut-off in cycles per pixel: 0.5 is the Nyquist frequency of one axis, √0.5 ≈ 0.707 the corner,
   * past which nothing is removed. Default 0.25.
   */
  readonly radius?: number;
  /** 'ideal' keeps the disc of bins within the radius; 'gaussian' (default) has no ringing. */
  readonly kind?: LowPassKind;
}

export const LOW_PASS_KINDS: readonly LowPassKind[] = ['ideal', 'gaussian'];

export class LowPassDefense implements Defense {
  readonly name = 'lowpass' as const;
  readonly radius: number;
  readonly kind: LowPassKind;

  constructor(options: LowPassOptions = {}) {
    const { radius = 0.25, kind = 'gaussian' } = options;
    checkOption(
      typeof radius === 'number' && radius > 0 && Number.isFinite(radius),
      this.name,
      'radius',
      'a finite number > 0 (cycles per pixel)',
      radius,
    );
    checkOption(LOW_PASS_KINDS.includes(kind), this.name, 'kind', `one of ${LOW_PASS_KINDS.join(', ')}`, kind);
    this.radius = radius;
    this.kind = kind;
  }

  async apply(x: tf.Tensor4D): Promise<tf.Tensor4D> {
    return this.applyDifferentiable(x);
  }

  applyDifferentiable(x: tf.Tensor4D): tf.Tensor4D {
    checkImages(this.name, x);
    // Per channel, clipped back to [0, 1]: the ideal mask rings (Gibbs) past the range near edges.
    return lowPassImages(x, this.radius, this.kind);
  }
}
