/**
 * Kernel density of the last hidden layer's features under the predicted class (Feinman et al.
 * 2017, "Detecting adversarial samples from artifacts"): adversarial examples are pushed across
 * the decision boundary into regions where training images of the new class are sparse, the
 * low-density pockets that the root-cause studies of adversarial examples point at. A Gaussian
 * kernel over a seeded sample of clean training features per class, its bandwidth set per class
 * by the median heuristic; the score is −log density, standardised by clean images of the class
 * that the sample does not hold (so one threshold serves every class).
 */
import * as tf from '@tensorflow/tfjs';
import {
  argmax,
  classRows,
  byClassOrPooled,
  Detector,
  FitData,
  ImageFeatures,
  meanStd,
  squaredDistance,
  stateTensors,
} from './detector';
import { mulberry32, permutation } from '../train/random';

/** Kernel centres kept per class: enough for a smooth density, small enough for calibration.json. */
export const DENSITY_SAMPLES_PER_CLASS = 300;

export interface DensityState {
  readonly layer: string;
  readonly width: number;
  /** Per class: kernel centres, base64 of float32 row-major (count × width). */
  readonly samples: string[];
  /** Per class: 1 / σ² of the Gaussian kernel. */
  readonly inverseBandwidth: number[];
  /** Per class: mean and std of −log density of held-back clean images. */
  readonly scale: Array<{ mean: number; std: number }>;
}

const encode = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
const decode = (s: string) => {
  const b = Buffer.from(s, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

// Decoded kernel centres, per state object (decoding 1 MB of base64 per image would dominate).
const decoded = new WeakMap<DensityState, Float32Array[]>();
function centres(state: DensityState): Float32Array[] {
  let c = decoded.get(state);
  if (!c) decoded.set(state, (c = state.samples.map(decode)));
  return c;
}

function negativeLogDensity(x: Float32Array, samples: Float32Array, width: number, inverseBandwidth: number): number {
  const n = samples.length / width;
  const exponents = new Float64Array(n);
  let max = -Infinity;
  // One flat loop over the centres (no views): this runs for every screened image.
  for (let i = 0, o = 0; i < n; i++, o += width) {
    // Four accumulators: independent additions pipeline where one chain would wait on each other.
    let d0 = 0;
    let d1 = 0;
    let d2 = 0;
    let d3 = 0;
    let j = 0;
    for (; j + 3 < width; j += 4) {
      const t0 = x[j] - samples[o + j];
      const t1 = x[j + 1] - samples[o + j + 1];
      const t2 = x[j + 2] - samples[o + j + 2];
      const t3 = x[j + 3] - samples[o + j + 3];
      d0 += t0 * t0;
      d1 += t1 * t1;
      d2 += t2 * t2;
      d3 += t3 * t3;
    }
    for (; j < width; j++) d0 += (x[j] - samples[o + j]) ** 2;
    const d = d0 + d1 + d2 + d3;
    exponents[i] = -d * inverseBandwidth;
    if (exponents[i] > max) max = exponents[i];
  }
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(exponents[i] - max);
  return -(max + Math.log(sum / n));
}

function medianSquaredDistance(samples: Float32Array, width: number): number {
  const n = samples.length / width;
  const d: number[] = [];
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j += 3)
      d.push(
        squaredDistance(samples.subarray(i * width, (i + 1) * width), samples.subarray(j * width, (j + 1) * width)),
      );
  d.sort((a, b) => a - b);
  return Math.max(d[Math.floor(d.length / 2)] ?? 1, 1e-9);
}

export function densityDetector(layer: string): Detector<DensityState> {
  const raw = (state: DensityState, f: ImageFeatures, c: number) =>
    negativeLogDensity(f.activations[layer], centres(state)[c], state.width, state.inverseBandwidth[c]);
  return {
    name: 'density',
    description: `kernel density of ${layer} features under the predicted class (−log, standardised per class)`,
    fit(data: FitData): DensityState {
      const width = data.clean[0].activations[layer].length;
      const random = mulberry32(7);
      const samples: Float32Array[] = [];
      const held: number[][] = [];
      for (const members of byClassOrPooled(data.labels, data.numClasses)) {
        const order = Array.from(permutation(members.length, random), (k) => members[k]);
        const keep = order.slice(0, Math.min(DENSITY_SAMPLES_PER_CLASS, Math.ceil(order.length / 2)));
        const s = new Float32Array(keep.length * width);
        keep.forEach((i, k) => s.set(data.clean[i].activations[layer], k * width));
        samples.push(s);
        held.push(order.slice(keep.length));
      }
      const inverseBandwidth = samples.map((s) => 1 / medianSquaredDistance(s, width));
      const partial = {
        layer,
        width,
        samples: samples.map(encode),
        inverseBandwidth,
        scale: [] as DensityState['scale'],
      };
      decoded.set(partial, samples);
      const scale = held.map((members, c) => {
        const m = meanStd(members.map((i) => raw(partial, data.clean[i], c)));
        return { mean: m.mean, std: Math.max(m.std, 1e-6) };
      });
      return { ...partial, scale };
    },
    score(state, f) {
      const c = argmax(f.probs);
      return (raw(state, f, c) - state.scale[c].mean) / state.scale[c].std;
    },
    scoreTensor(state, batch, classes) {
      const k = stateTensors(constants, state, () => kernelTensors(state));
      return tf.tidy(() => {
        const a = batch.activations[layer];
        const idx = classes;
        // ‖a − s‖² = ‖a‖² − 2a·s + ‖s‖², with the centres stored transposed (a plain product is fast on wasm).
        const sq = tf.add(tf.sub(tf.sum(tf.square(a), 1, true), tf.mul(tf.matMul(a, k.centresT), 2)), k.centreNorms);
        const member = classRows(k.classOfCentre, idx); // [N, centres]
        const exponent = tf.add(
          tf.mul(tf.neg(sq), tf.reshape(classRows(k.inverseBandwidth, idx), [-1, 1])),
          tf.mul(tf.sub(1, member), -1e9),
        );
        const nld = tf.neg(tf.sub(tf.logSumExp(exponent, 1), classRows(k.logCount, idx)));
        return tf.div(tf.sub(nld, classRows(k.mean, idx)), classRows(k.std, idx)) as tf.Tensor1D;
      });
    },
  };
}

type KernelTensors = {
  centresT: tf.Tensor2D;
  centreNorms: tf.Tensor2D;
  classOfCentre: tf.Tensor2D;
  inverseBandwidth: tf.Tensor1D;
  logCount: tf.Tensor1D;
  mean: tf.Tensor1D;
  std: tf.Tensor1D;
};
const constants = new WeakMap<DensityState, Map<string, KernelTensors>>();

function kernelTensors(state: DensityState): KernelTensors {
  const per = centres(state);
  const total = per.reduce((n, s) => n + s.length / state.width, 0);
  const all = new Float32Array(total * state.width);
  const classOf = new Float32Array(per.length * total);
  const norms = new Float32Array(total);
  let row = 0;
  per.forEach((s, c) => {
    for (let i = 0; i < s.length / state.width; i++, row++) {
      const v = s.subarray(i * state.width, (i + 1) * state.width);
      all.set(v, row * state.width);
      norms[row] = squaredDistance(v, new Float32Array(state.width));
      classOf[c * total + row] = 1;
    }
  });
  return {
    centresT: tf.transpose(tf.tensor2d(all, [total, state.width])),
    centreNorms: tf.tensor2d(norms, [1, total]),
    classOfCentre: tf.tensor2d(classOf, [per.length, total]),
    inverseBandwidth: tf.tensor1d(state.inverseBandwidth),
    logCount: tf.tensor1d(per.map((s) => Math.log(s.length / state.width))),
    mean: tf.tensor1d(state.scale.map((s) => s.mean)),
    std: tf.tensor1d(state.scale.map((s) => s.std)),
  };
}
