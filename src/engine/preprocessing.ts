/**
 * What a network wants instead of the service's pixels. The service decodes every image to values
 * in [0, 1], RGB (or grey); a network trained on [−1, 1], on Caffe-style BGR with the ImageNet means
 * subtracted, or on torchvision's mean/std gets that mapping as the first step of its forward pass
 * (InferenceModel), so that attacks, gradients and defenses all stay in pixel space.
 *
 * The mapping, in this order: y = x · scale + offset; channels reversed when `channelOrder` is
 * 'bgr'; then (y − mean[c]) / std[c], with mean and std given in the network's channel order.
 */
import * as tf from '@tensorflow/tfjs';

export interface Preprocessing {
  readonly scale?: number;
  readonly offset?: number;
  /** Per channel (or one value for all), in the network's channel order. */
  readonly mean?: readonly number[];
  readonly std?: readonly number[];
  readonly channelOrder?: 'rgb' | 'bgr';
}

export const PREPROCESSING_PRESETS = {
  /** [0, 1]: what the service feeds; no step at all. */
  unit: { scale: 1, offset: 0 },
  /** [−1, 1]: MobileNet, Inception, EfficientNet-lite from Keras applications. */
  'minus-one-one': { scale: 2, offset: -1 },
  /** Keras' 'caffe' mode (ResNet50, VGG): 0-255, BGR, ImageNet means subtracted. */
  caffe: { scale: 255, channelOrder: 'bgr', mean: [103.939, 116.779, 123.68] },
  /** torchvision: [0, 1] with the ImageNet mean and std. */
  torch: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
} as const satisfies Record<string, Preprocessing>;

export type PreprocessingPreset = keyof typeof PREPROCESSING_PRESETS;

export function isPreprocessingPreset(name: string): name is PreprocessingPreset {
  return Object.prototype.hasOwnProperty.call(PREPROCESSING_PRESETS, name);
}

/** Whether `p` leaves the pixels as they are (absent, the 'unit' preset, or all defaults). */
export function isIdentity(p: Preprocessing | undefined): boolean {
  if (!p) return true;
  const all = (v: readonly number[] | undefined, d: number) => v === undefined || v.every((x) => x === d);
  return (
    (p.scale ?? 1) === 1 &&
    (p.offset ?? 0) === 0 &&
    (p.channelOrder ?? 'rgb') === 'rgb' &&
    all(p.mean, 0) &&
    all(p.std, 1)
  );
}

/** What is wrong with `value` as the preprocessing of a `channels`-channel input, or undefined. */
export function preprocessingProblem(value: unknown, channels: number): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be an object';
  const p = value as Record<string, unknown>;
  const known = ['scale', 'offset', 'mean', 'std', 'channelOrder'];
  const unknown = Object.keys(p).filter((k) => !known.includes(k));
  if (unknown.length) return `has unknown fields ${unknown.join(', ')} (expected ${known.join(', ')})`;
  for (const k of ['scale', 'offset'])
    if (p[k] !== undefined && !Number.isFinite(p[k]))
      return `'${k}' must be a finite number, got ${JSON.stringify(p[k])}`;
  if (p.scale === 0) return "'scale' must not be 0";
  for (const k of ['mean', 'std']) {
    const v = p[k];
    if (v === undefined) continue;
    if (!Array.isArray(v) || !v.every((x) => Number.isFinite(x)) || (v.length !== 1 && v.length !== channels))
      return `'${k}' must be 1 or ${channels} finite numbers, got ${JSON.stringify(v)}`;
    if (k === 'std' && v.some((x) => x === 0)) return "'std' must not contain 0";
  }
  if (p.channelOrder !== undefined && p.channelOrder !== 'rgb' && p.channelOrder !== 'bgr')
    return `'channelOrder' must be 'rgb' or 'bgr', got ${JSON.stringify(p.channelOrder)}`;
  return undefined;
}

/** Pixels in [0, 1], [N, H, W, C] → what the network wants. Differentiable; the identity returns `x` itself. */
export function applyPreprocessing(x: tf.Tensor4D, p: Preprocessing | undefined): tf.Tensor4D {
  if (isIdentity(p)) return x;
  return tf.tidy(() => {
    let y: tf.Tensor4D = x;
    if ((p!.scale ?? 1) !== 1) y = tf.mul(y, p!.scale!);
    if ((p!.offset ?? 0) !== 0) y = tf.add(y, p!.offset!);
    if (p!.channelOrder === 'bgr' && y.shape[3] === 3) y = tf.reverse(y, 3);
    if (p!.mean) y = tf.sub(y, tf.tensor1d([...p!.mean]));
    if (p!.std) y = tf.div(y, tf.tensor1d([...p!.std]));
    return y;
  });
}
