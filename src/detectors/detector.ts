/**
 * The detector interface (as ART's EvasionDetector: fit, then detect): a detector is fitted once on
 * features of clean training images (and, where it has a choice to make such as a cut-off, on
 * adversarial training images), its state is plain JSON kept in calibration.json, and it scores
 * one image's features at a time. Higher scores mean "more likely adversarial".
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageOutput } from '../engine/model';

/** What the detectors read of one image: one forward pass plus the engine's screening extras. */
export interface ImageFeatures {
  readonly probs: Float32Array;
  readonly logits: Float32Array;
  /** Per activation layer, flattened (conv layers pooled per channel: means, then standard deviations). */
  readonly activations: Readonly<Record<string, Float32Array>>;
  /** Cut-off (cycles/pixel) → share of spectral energy above it, per channel. */
  readonly hfShare: ReadonlyMap<number, Float32Array>;
  /** Probabilities of the low-passed image. */
  readonly lowPassProbs?: Float32Array;
  /** Probabilities of squeezed versions of the image (the Feature Squeezing baseline only). */
  readonly squeezedProbs?: readonly Float32Array[];
}

export interface FitData {
  /** Clean training images the detector is fitted on. */
  readonly clean: readonly ImageFeatures[];
  /** Their true classes. */
  readonly labels: Int32Array;
  /** Adversarial training images, for the choices a detector makes at calibration (e.g. its cut-off). */
  readonly adversarial: readonly ImageFeatures[];
  readonly numClasses: number;
}

/** The features of a batch as differentiable tensors (adaptive attacks descend the detectors' scores). */
export interface TensorFeatures {
  readonly probs: tf.Tensor2D;
  readonly logits: tf.Tensor2D;
  readonly activations: Readonly<Record<string, tf.Tensor2D>>;
  /** Share above a cut-off per image and channel, [N, C]. */
  hfShare(cutoff: number): tf.Tensor2D;
  readonly lowPassProbs: tf.Tensor2D;
}

export interface Detector<State = unknown> {
  readonly name: string;
  /** One line for users: what the score measures. */
  readonly description: string;
  /**
   * Added after calibrations were made: one without its state (an older file, another model's)
   * screens without it rather than failing; every other detector's state is required.
   */
  readonly optional?: boolean;
  fit(data: FitData): State;
  score(state: State, image: ImageFeatures): number;
  /**
   * The same score as a differentiable function of a batch, [N], the class of each image held
   * fixed at `classes` (int32 [N]; an argmax has no gradient). Tests check it agrees with score().
   */
  scoreTensor(state: State, batch: TensorFeatures, classes: tf.Tensor1D): tf.Tensor1D;
}

/**
 * Constant tensors derived from a detector's state, made once per state and backend and kept
 * (outside any tidy) for the life of the process.
 */
export function stateTensors<S extends object, T extends tf.TensorContainer>(
  cache: WeakMap<S, Map<string, T>>,
  state: S,
  make: () => T,
): T {
  let perBackend = cache.get(state);
  if (!perBackend) cache.set(state, (perBackend = new Map()));
  const key = tf.getBackend();
  let t = perBackend.get(key);
  if (t === undefined) {
    t = tf.tidy(make);
    // kept: a first call inside an attack's tidy or grad scope would otherwise dispose them with it.
    const keepAll = (v: unknown): void => {
      if (v instanceof tf.Tensor) tf.keep(v);
      else if (v && typeof v === 'object') Object.values(v).forEach(keepAll);
    };
    keepAll(t);
    perBackend.set(key, t);
  }
  return t;
}

/**
 * Rows of a per-class table [K, W] (or [K]) for each image's class: a one-hot product rather than
 * tf.gather, whose gradient fails on int32 indices that depend on the input (the argmax of the
 * logits inside an adaptive attack's loss).
 */
export function classRows<T extends tf.Tensor1D | tf.Tensor2D>(table: T, classes: tf.Tensor1D): T {
  return tf.tidy(() => {
    const k = table.shape[0];
    const selector = tf.cast(tf.oneHot(tf.cast(classes, 'int32') as tf.Tensor1D, k), 'float32') as tf.Tensor2D;
    if (table.rank === 1) return tf.reshape(tf.matMul(selector, tf.reshape(table, [k, 1])), [-1]) as T;
    return tf.matMul(selector, table as tf.Tensor2D) as T;
  });
}

export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** The engine's output for one image as detector features; `hfCutoffs` are the cut-offs the batch computed. */
export function toFeatures(out: ImageOutput, hfCutoffs: readonly number[]): ImageFeatures {
  const hfShare = new Map<number, Float32Array>();
  if (out.hfShare) {
    const channels = out.hfShare.length / hfCutoffs.length;
    hfCutoffs.forEach((cut, k) => hfShare.set(cut, out.hfShare!.subarray(k * channels, (k + 1) * channels)));
  }
  return {
    probs: out.probs,
    logits: out.logits,
    activations: out.activations,
    hfShare,
    lowPassProbs: out.lowPassProbs,
  };
}

/** Mean and standard deviation (population), in float64. */
export function meanStd(values: ArrayLike<number>): { mean: number; std: number } {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i];
  const mean = values.length ? sum / values.length : 0;
  let sq = 0;
  for (let i = 0; i < values.length; i++) sq += (values[i] - mean) ** 2;
  return { mean, std: values.length ? Math.sqrt(sq / values.length) : 0 };
}

export function squaredDistance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return s;
}

/**
 * Fewest fit images a class needs for statistics of its own. A class with fewer — a folder that
 * left it out, a class the model rarely predicts — takes the pooled statistics of all classes
 * (byClassOrPooled): its scores are then relative to clean images in general, not to its own, and
 * calibrate reports it (Calibration.data.pooledClasses). Not 2: calibrating MobileNetV2 on its own
 * predictions gave one class 3 fit images; the density detector standardised that class by the
 * spread of 1 held-out image (std 0, floored), and a benign image predicted as it scored −504 870,
 * its combined score 124.9 against a threshold of 2.7. With 10, each per-class spread has 5.
 */
export const MIN_CLASS_IMAGES = 10;

/** byClass, a class with fewer than MIN_CLASS_IMAGES members given every index (the pooled fallback). */
export function byClassOrPooled(classes: ArrayLike<number>, numClasses: number): number[][] {
  const all = Array.from({ length: classes.length }, (_, i) => i);
  return byClass(classes, numClasses).map((members) => (members.length < MIN_CLASS_IMAGES ? all : members));
}

/** Groups indices 0..n-1 by class. */
export function byClass(classes: ArrayLike<number>, numClasses: number): number[][] {
  const groups: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < classes.length; i++) groups[classes[i]].push(i);
  return groups;
}
