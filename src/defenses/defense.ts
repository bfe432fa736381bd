/**
 * The defense interface: an input transformation applied before the model (ART's `Preprocessor`).
 * Hyper-parameters go in the constructor's options, checked there; the image batch goes in the call,
 * and nothing is kept between calls.
 */
import * as tf from '@tensorflow/tfjs';

export interface Defense {
  readonly name: DefenseName;
  /** Transformed copy of x [N,H,W,C] in [0,1]; the caller owns the result (x is not disposed). */
  apply(x: tf.Tensor4D): Promise<tf.Tensor4D>;
  /**
   * Differentiable version when the transform has one (low-pass is linear, the median a min/max
   * network): adaptive attacks use it. Synchronous, tf ops only, so it can run inside tf.grad.
   */
  applyDifferentiable?(x: tf.Tensor4D): tf.Tensor4D;
}

export type DefenseName = 'lowpass' | 'bitdepth' | 'median' | 'jpeg';

/** Throws a RangeError naming the defense, the option, what was expected and what came. */
export function checkOption(ok: boolean, defense: DefenseName, option: string, expected: string, got: unknown): void {
  if (!ok) throw new RangeError(`${defense} defense: option '${option}' must be ${expected}; got ${describe(got)}`);
}

function describe(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : String(value);
}

/** Integer in [min, max]. */
export function isIntegerIn(value: unknown, min: number, max: number): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

/** Checks that x is a batch of images [N, H, W, C] with C = 1 or 3, the shape every defense takes. */
export function checkImages(defense: DefenseName, x: tf.Tensor): void {
  if (x.rank !== 4 || (x.shape[3] !== 1 && x.shape[3] !== 3)) {
    throw new RangeError(
      `${defense} defense: expected images [N, H, W, C] with C = 1 or 3; got [${x.shape.join(', ')}]`,
    );
  }
}
