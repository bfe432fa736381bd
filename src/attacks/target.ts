/**
 * The model as an attack target, and what every attack shares: the checks on a call, batching, and
 * per-image seeded random streams (so that results depend neither on the batch size nor on which
 * other images are attacked alongside).
 */
import * as tf from '@tensorflow/tfjs';
import { InferenceModel } from '../engine/model';
import { mulberry32 } from '../train/random';
import { AttackOptions, AttackTarget } from './attack';

/** Images attacked at once when options.batchSize is absent: wasm's forward + gradient peaks near 64. */
export const DEFAULT_ATTACK_BATCH = 64;
/**
 * …for images up to 32×32×3. Photographs at 224×224×3 through a MobileNetV2 hold ~0.4 GiB of
 * activations per image for the backward pass: 16 at once overflow wasm's 4 GiB heap, 8 fit.
 */
export const LARGE_IMAGE_ATTACK_BATCH = 8;

function defaultAttackBatch(x: tf.Tensor4D): number {
  const [, h, w, c] = x.shape;
  return h * w * c <= 32 * 32 * 3 ? DEFAULT_ATTACK_BATCH : LARGE_IMAGE_ATTACK_BATCH;
}

/** The bare model: its logits, no penalty (a non-adaptive attack). */
export function modelTarget(model: InferenceModel): AttackTarget {
  return { logits: (x) => model.logits(x), features: (x) => model.forwardDifferentiable(x).activations };
}

/** A call's settings once checked, with their defaults. */
export interface CheckedCall {
  readonly epsilon: number;
  readonly numClasses: number;
  readonly targeted: boolean;
  /** Per image: the true label (untargeted) or the target (targeted), the class the loss is about. */
  readonly classes: Int32Array;
  readonly seed: number;
  readonly penaltyWeight: number;
  readonly batchSize: number;
}

function checkClasses(name: string, values: Int32Array, count: number, numClasses: number): void {
  if (values.length !== count)
    throw new RangeError(`${name}: expected ${count} values (one per image), got ${values.length}`);
  const bad = values.findIndex((v) => !(v >= 0 && v < numClasses));
  if (bad >= 0)
    throw new RangeError(`${name}[${bad}]: expected a class index in [0, ${numClasses}), got ${values[bad]}`);
}

/** The optional numeric options: each test, and what the error says was expected. */
const OPTION_CHECKS: ReadonlyArray<[keyof AttackOptions, (v: number) => boolean, string]> = [
  ['steps', (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1'],
  ['stepSize', (v) => v > 0 && Number.isFinite(v), 'a finite number > 0'],
  ['seed', (v) => Number.isInteger(v), 'an integer'],
  ['penaltyWeight', (v) => Number.isFinite(v), 'a finite number'],
  ['batchSize', (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1'],
];

/**
 * Checks one attack call and fills in the defaults; `finiteEpsilon` is false for CW-L2, where an
 * unbounded budget is allowed. Runs the target on one image to learn the number of classes.
 */
export function checkCall(
  target: AttackTarget,
  x: tf.Tensor4D,
  labels: Int32Array,
  options: AttackOptions,
  finiteEpsilon = true,
): CheckedCall {
  if (x.rank !== 4 || x.shape[0] < 1)
    throw new RangeError(`x: expected a non-empty [N, H, W, C] batch, got [${x.shape}]`);
  const eps = options.epsilon;
  if (!(eps >= 0) || (finiteEpsilon && !Number.isFinite(eps)))
    throw new RangeError(`epsilon: expected a ${finiteEpsilon ? 'finite ' : ''}number ≥ 0, got ${eps}`);
  for (const [key, ok, expected] of OPTION_CHECKS) {
    const v = options[key];
    if (v !== undefined && !ok(v as number)) throw new RangeError(`${key}: expected ${expected}, got ${String(v)}`);
  }
  const numClasses = tf.tidy(() => target.logits(tf.slice(x, 0, 1)).shape[1]);
  const n = x.shape[0];
  checkClasses('labels', labels, n, numClasses);
  if (options.targets) checkClasses('targets', options.targets, n, numClasses);
  return {
    epsilon: eps,
    numClasses,
    targeted: options.targets !== undefined,
    classes: options.targets ?? labels,
    seed: options.seed ?? 0,
    penaltyWeight: options.penaltyWeight ?? 1,
    batchSize: options.batchSize ?? defaultAttackBatch(x),
  };
}

/**
 * Runs `attack` on consecutive slices of at most `batchSize` images and concatenates the results;
 * `first` is the index of the slice's first image (for per-image random streams and labels).
 */
export async function inBatches(
  x: tf.Tensor4D,
  batchSize: number,
  attack: (xb: tf.Tensor4D, first: number) => Promise<tf.Tensor4D>,
): Promise<tf.Tensor4D> {
  const n = x.shape[0];
  if (n <= batchSize) return attack(x, 0);
  const parts: tf.Tensor4D[] = [];
  try {
    for (let first = 0; first < n; first += batchSize) {
      const xb = tf.slice(x, first, Math.min(batchSize, n - first));
      try {
        parts.push(await attack(xb, first));
      } finally {
        xb.dispose();
      }
    }
    return tf.concat(parts);
  } finally {
    tf.dispose(parts);
  }
}

/** A random stream for image `index` of a call seeded with `seed` (independent of batching). */
export function imageRandom(seed: number, index: number): () => number {
  // Distinct odd multipliers spread (seed, index) pairs over the 32-bit state (as in splitmix).
  return mulberry32((Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
}

/** The one-hot rows [n, classes] of images first .. first + n − 1's loss classes (true label or target). */
export function classOneHot(call: CheckedCall, first: number, n: number): tf.Tensor2D {
  return tf.tidy(() =>
    tf.cast(tf.oneHot(tf.tensor1d(call.classes.subarray(first, first + n), 'int32'), call.numClasses), 'float32'),
  ) as tf.Tensor2D;
}
