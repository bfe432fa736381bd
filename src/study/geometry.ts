/**
 * The geometry a model gives the classes, measured on clean test images: how far apart the class
 * expectations (mean activation per class) lie at the last hidden layer and at the logits, against
 * how widely a class spreads around its own expectation — their ratio is scale-free, so variants
 * that normalise or rescale features compare — and how far clean images sit from the decision
 * boundary: the logit margin, and the boundary's L2 distance in pixel space, estimated to first
 * order (DeepFool's linearisation, Moosavi-Dezfooli et al. 2016: margin over the margin's gradient
 * norm) and measured by CW (the smallest adversarial it found).
 */
import * as tf from '@tensorflow/tfjs';
import { classExpectations } from '../detectors/classExpectations';
import { MIN_CLASS_IMAGES } from '../detectors/detector';
import type { ImageOutput, InferenceModel } from '../engine/model';
import type { LabelledPixels } from './robustness';

export interface LayerGeometry {
  readonly layer: string;
  /** Mean and smallest L2 distance between two class expectations. */
  readonly meanDistance: number;
  readonly minDistance: number;
  /** Root mean squared distance of an image's activation to its class expectation. */
  readonly withinSpread: number;
  /** meanDistance / withinSpread. */
  readonly separationRatio: number;
}

export interface Geometry {
  readonly layers: LayerGeometry[];
  /** z_true − max other z, over the correctly classified images. */
  readonly logitMargin: { readonly mean: number; readonly median: number };
  /** Median over the attacked images of the linearised L2 distance to the runner-up's boundary. */
  readonly linearBoundaryL2: number;
  /** Median over the attacked images of CW's smallest adversarial L2 norm (∞ where none was found). */
  readonly cwBoundaryL2: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const dist = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
};

/** Distances between the class expectations of `layer` and the spread around them (classes with under MIN_CLASS_IMAGES images skipped). */
export function layerGeometry(
  outputs: readonly ImageOutput[],
  labels: Int32Array,
  layer: string,
  numClasses: number,
): LayerGeometry {
  const activations = outputs.map((o) => (layer === 'logits' ? { logits: o.logits } : o.activations));
  const mu = classExpectations(activations, labels, [layer], numClasses)[layer];
  // Classes with too few images share the pooled mean (classExpectations): they are left out here.
  const counts = new Array<number>(numClasses).fill(0);
  labels.forEach((k) => counts[k]++);
  const present = counts.map((c) => c >= MIN_CLASS_IMAGES);
  const distances: number[] = [];
  for (let i = 0; i < numClasses; i++)
    for (let j = i + 1; j < numClasses; j++) if (present[i] && present[j]) distances.push(dist(mu[i], mu[j]));
  let squared = 0;
  activations.forEach((a, n) => (squared += dist(a[layer], mu[labels[n]]) ** 2));
  const withinSpread = Math.sqrt(squared / Math.max(1, outputs.length));
  const meanDistance = distances.reduce((s, d) => s + d, 0) / Math.max(1, distances.length);
  return {
    layer,
    meanDistance,
    minDistance: distances.length ? Math.min(...distances) : NaN,
    withinSpread,
    separationRatio: withinSpread > 0 ? meanDistance / withinSpread : NaN,
  };
}

/** Per image: (z_y − z_j) / ‖∇ₓ(z_y − z_j)‖₂ with j the runner-up class: the linearised distance to that boundary. */
export async function linearBoundaryDistances(model: InferenceModel, set: LabelledPixels): Promise<number[]> {
  const shape = model.inputShape;
  const size = model.imageSize;
  const out: number[] = [];
  for (let start = 0; start < set.count; start += 64) {
    const n = Math.min(64, set.count - start);
    const [margins, norms] = tf.tidy(() => {
      const x = tf.tensor4d(set.pixels.subarray(start * size, (start + n) * size), [n, ...shape]);
      const k = model.metadata.labels.length;
      const y = tf.oneHot(tf.tensor1d(set.labels.subarray(start, start + n), 'int32'), k).toFloat();
      const z = model.logits(x);
      // The runner-up: the largest logit once the true one is pushed out of the way.
      const rival = tf.oneHot(tf.argMax(tf.sub(z, tf.mul(y, 1e9)), 1), k).toFloat();
      const marginOf = (input: tf.Tensor) => tf.sum(tf.mul(model.logits(input as tf.Tensor4D), tf.sub(y, rival)), 1);
      // Images are independent in the serving graph, so the gradient of the sum is each image's own.
      const g = tf.grad((input: tf.Tensor) => tf.sum(marginOf(input)))(x);
      return [marginOf(x), tf.sqrt(tf.sum(tf.square(g), [1, 2, 3]))];
    });
    const [m, g] = await Promise.all([margins.data(), norms.data()]);
    tf.dispose([margins, norms]);
    for (let i = 0; i < n; i++) out.push(m[i] / Math.max(g[i], 1e-12));
  }
  return out;
}

export async function geometry(
  model: InferenceModel,
  clean: { outputs: readonly ImageOutput[]; labels: Int32Array },
  attacked: LabelledPixels,
  cwL2: readonly number[],
): Promise<Geometry> {
  const numClasses = model.metadata.labels.length;
  const logitsLayer = model.metadata.logitsLayer;
  const hidden = model.activationLayers.filter((l) => l !== logitsLayer).slice(-1)[0];
  const layers = [hidden, 'logits'].map((l) => layerGeometry(clean.outputs, clean.labels, l, numClasses));
  const margins = clean.outputs.flatMap((o, i) => {
    const y = clean.labels[i];
    const rival = Math.max(...Array.from(o.logits).filter((_, k) => k !== y));
    const m = o.logits[y] - rival;
    return m > 0 ? [m] : [];
  });
  return {
    layers,
    logitMargin: { mean: margins.reduce((s, m) => s + m, 0) / Math.max(1, margins.length), median: median(margins) },
    linearBoundaryL2: median(await linearBoundaryDistances(model, attacked)),
    cwBoundaryL2: median(cwL2),
  };
}
