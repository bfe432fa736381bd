/**
 * A second model for the tests that serve several: RGB at 32×32, built from the bundled Fashion-MNIST
 * CNN (a fixed 1×1 convolution takes luminance, a crop takes the middle 28×28, then the bundled
 * layers with their trained weights), so that it classifies real images well while its input shape,
 * channels, id and SHA-256 all differ from the default model's. Calibrated small, like
 * smallCalibration, on Fashion-MNIST images centred in 32×32 and repeated over three channels.
 */
import * as tf from '@tensorflow/tfjs';
import { calibrate } from '../../src/calibration/calibrate';
import { calibrationPath, saveCalibration } from '../../src/calibration/calibrationFile';
import { loadFashionMnist } from '../../src/data/fashionMnist';
import { InferenceModel } from '../../src/engine/model';
import { loadModel, saveModel } from '../../src/engine/modelStore';
import { defaultModelDir } from '../../src/util/paths';

export const RGB_MODEL_ID = 'fashion-rgb32';
const SIZE = 32;
const PAD = (SIZE - 28) / 2;

/** Fashion-MNIST images, 28×28 grey, centred on a black 32×32 and repeated over R, G and B. */
export function toRgb32(grey: Float32Array, count: number): Float32Array {
  const out = new Float32Array(count * SIZE * SIZE * 3);
  for (let n = 0; n < count; n++)
    for (let y = 0; y < 28; y++)
      for (let x = 0; x < 28; x++) {
        const v = grey[n * 784 + y * 28 + x];
        const o = ((n * SIZE + y + PAD) * SIZE + x + PAD) * 3;
        out[o] = out[o + 1] = out[o + 2] = v;
      }
  return out;
}

/** Writes the model and its calibration to `dir` (seconds); returns its SHA-256. */
export async function makeRgbModel(dir: string): Promise<string> {
  const fashion = await loadModel(defaultModelDir());
  const input = tf.input({ shape: [SIZE, SIZE, 3] });
  const luminance = tf.layers.conv2d({
    filters: 1,
    kernelSize: 1,
    useBias: false,
    name: 'luminance',
    weights: [tf.tensor4d([1 / 3, 1 / 3, 1 / 3], [1, 1, 3, 1])],
  });
  let x = tf.layers.cropping2D({ cropping: [PAD, PAD], name: 'centre' }).apply(luminance.apply(input));
  for (const layer of (fashion.model as tf.LayersModel).layers) x = layer.apply(x);
  const model = tf.model({ inputs: input, outputs: x as tf.SymbolicTensor, name: RGB_MODEL_ID });
  const md = fashion.metadata;
  const sha256 = await saveModel(model, dir, {
    id: RGB_MODEL_ID,
    labels: md.labels,
    inputShape: [SIZE, SIZE, 3],
    outputLayer: md.outputLayer,
    logitsLayer: md.logitsLayer,
    activationLayers: md.activationLayers,
  });
  const inference = await InferenceModel.load(dir);
  const train = loadFashionMnist('train', undefined, 600);
  const calibration = await calibrate(
    inference,
    {
      pixels: toRgb32(train.pixels, train.count),
      labels: Int32Array.from(train.labels),
      count: train.count,
      source: 'fashion-mnist train, 32×32 RGB (test)',
    },
    { fit: 400, holdout: 140, attacked: 60, seed: 3, targetFpr: 0.05, maxAccuracyCost: 0.01 },
    sha256,
  );
  saveCalibration(calibrationPath(dir), calibration);
  inference.dispose();
  fashion.model.dispose();
  return sha256;
}
