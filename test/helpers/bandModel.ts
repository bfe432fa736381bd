/**
 * A model whose promotion–suppression is known by construction: 6×6 grey images in three vertical
 * bands two pixels wide; unit k of the layer 'hidden' is BAND_GAIN times the mean of band k (after
 * an identity 1×1 convolution 'feat', there for Grad-CAM), and the logits are 'hidden' unchanged.
 * So lowering band k lowers logit k and hidden unit k by exactly BAND_GAIN times as much, and
 * nothing else moves. Calibrated on synthetic images whose class's band is the brightest.
 */
import * as tf from '@tensorflow/tfjs';
import { calibrate, LabelledImages } from '../../src/calibration/calibrate';
import { calibrationPath, saveCalibration } from '../../src/calibration/calibrationFile';
import { InferenceModel } from '../../src/engine/model';
import { saveModel } from '../../src/engine/modelStore';
import { mulberry32 } from '../../src/train/random';

export const BAND_MODEL_ID = 'bands';
export const BAND_GAIN = 10;
const SIDE = 6;

/** A 6×6 image whose band k has brightness bands[k], plus `noise` × (uniform − ½) per pixel. */
export function bandImage(bands: readonly number[], noise = 0, random: () => number = Math.random): Float32Array {
  return Float32Array.from({ length: SIDE * SIDE }, (_, i) => {
    const v = bands[Math.floor((i % SIDE) / 2)] + noise * (random() - 0.5);
    return Math.min(1, Math.max(0, v));
  });
}

/** The calibration's images: 240, class k's band the brightest. */
export function bandImages(): LabelledImages {
  const random = mulberry32(5);
  const count = 240;
  const labels = Int32Array.from({ length: count }, (_, i) => i % 3);
  const pixels = new Float32Array(count * SIDE * SIDE);
  labels.forEach((label, i) => {
    const bands = [0, 1, 2].map((k) => (k === label ? 0.5 + 0.4 * random() : 0.1 + 0.35 * random()));
    pixels.set(bandImage(bands, 0.1, random), i * SIDE * SIDE);
  });
  return { pixels, labels, count, source: 'synthetic bands (test)' };
}

export const BAND_CALIBRATION = {
  fit: 120,
  holdout: 60,
  attacked: 60,
  seed: 2,
  targetFpr: 0.05,
  maxAccuracyCost: 0.01,
} as const;

/** Writes the model and its calibration to `dir`; returns its SHA-256. */
export async function makeBandModel(dir: string): Promise<string> {
  const input = tf.input({ shape: [SIDE, SIDE, 1] });
  const feat = tf.layers.conv2d({
    filters: 1,
    kernelSize: 1,
    activation: 'relu',
    name: 'feat',
    weights: [tf.tensor4d([1], [1, 1, 1, 1]), tf.tensor1d([0])],
  });
  const bandMeans = Array.from({ length: SIDE * SIDE * 3 }, (_, i) => {
    const [pixel, unit] = [Math.floor(i / 3), i % 3];
    return Math.floor((pixel % SIDE) / 2) === unit ? BAND_GAIN / (SIDE * 2) : 0;
  });
  const hidden = tf.layers.dense({
    units: 3,
    activation: 'relu',
    name: 'hidden',
    weights: [tf.tensor2d(bandMeans, [SIDE * SIDE, 3]), tf.zeros([3])],
  });
  const logits = tf.layers.dense({
    units: 3,
    useBias: false,
    name: 'logits',
    weights: [tf.eye(3)],
  });
  let x = feat.apply(input) as tf.SymbolicTensor;
  x = tf.layers.flatten({ name: 'flat' }).apply(x) as tf.SymbolicTensor;
  x = logits.apply(hidden.apply(x)) as tf.SymbolicTensor;
  const probs = tf.layers.softmax({ name: 'probs' }).apply(x) as tf.SymbolicTensor;
  const sha256 = await saveModel(tf.model({ inputs: input, outputs: probs }), dir, {
    id: BAND_MODEL_ID,
    labels: ['left', 'middle', 'right'],
    inputShape: [SIDE, SIDE, 1],
    outputLayer: 'probs',
    logitsLayer: 'logits',
    activationLayers: ['feat', 'hidden', 'logits'],
  });
  const model = await InferenceModel.load(dir);
  const calibration = await calibrate(model, bandImages(), BAND_CALIBRATION, sha256);
  saveCalibration(calibrationPath(dir), calibration);
  model.dispose();
  return sha256;
}
