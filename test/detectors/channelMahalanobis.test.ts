/**
 * The channel-means Mahalanobis detectors: known answers on a hand-made fit (only the channel
 * means count, the standard deviations that follow them do not), the tensor score equal to the
 * plain one, and calibration: one per conv layer, fitted and given its own verdict input only when
 * asked, screened by name afterwards; and the calibration attacks' weights.
 */
import * as tf from '@tensorflow/tfjs';
import { attackRowWeights } from '../../src/calibration/calibrate';
import type { Calibration } from '../../src/calibration/calibrationFile';
import {
  channelMahalanobis,
  channelMahalanobisLayer,
  channelMahalanobisName,
} from '../../src/detectors/channelMahalanobis';
import type { FitData, ImageFeatures, TensorFeatures } from '../../src/detectors/detector';
import { screeningDetectors } from '../../src/detectors/registry';
import { initBackend } from '../../src/engine/backends';
import { InferenceModel, splitBatch } from '../../src/engine/model';
import { Screener } from '../../src/screening/screener';
import { tensorFeatures } from '../../src/screening/tensorFeatures';
import { smallCalibration } from '../helpers/calibration';
import { BUNDLED_MODEL_DIR, fixtureLabels, fixturePixels } from '../helpers/fixtures';

beforeAll(async () => {
  await initBackend('wasm');
});

/** An image of a two-channel conv layer 'c': means [m0, m1], then standard deviations (noise here). */
const image = (m0: number, m1: number, cls: number, std = [Math.random(), Math.random()]): ImageFeatures => ({
  probs: Float32Array.from([cls === 0 ? 0.9 : 0.1, cls === 1 ? 0.9 : 0.1]),
  logits: new Float32Array(2),
  activations: { c: Float32Array.from([m0, m1, ...std]) },
  hfShare: new Map(),
});

describe('known answers', () => {
  // Class 0 around (0, 0), class 1 around (10, 0); within a class ±1 on channel 0, ±2 on channel 1:
  // the shared covariance is diag(1, 4) (shrunk by 1 % towards its mean eigenvalue). Each corner
  // three times: a class needs MIN_CLASS_IMAGES images for a mean of its own.
  const clean: ImageFeatures[] = [];
  const labels: number[] = [];
  for (const [cls, x] of [
    [0, 0],
    [1, 10],
    [0, 0],
    [1, 10],
    [0, 0],
    [1, 10],
  ]) {
    for (const [d0, d1] of [
      [1, 2],
      [-1, 2],
      [1, -2],
      [-1, -2],
    ]) {
      clean.push(image(x + d0, d1, cls));
      labels.push(cls);
    }
  }
  const data: FitData = { clean, labels: Int32Array.from(labels), adversarial: [], numClasses: 2 };
  const detector = channelMahalanobis('c');
  const state = detector.fit(data);

  test('class means of the channel means, the shared precision, and the clean images at distance 1', () => {
    expect(state.channels).toBe(2);
    expect(state.expectations[0]).toEqual([0, 0]);
    expect(state.expectations[1]).toEqual([10, 0]);
    // Covariance diag(1, 4) shrunk: 0.99·diag(1, 4) + 0.01·2.5 (+1e-9) on the diagonal.
    expect(state.precision[0]).toBeCloseTo(1 / (0.99 + 0.025), 6);
    expect(state.precision[3]).toBeCloseTo(1 / (3.96 + 0.025), 6);
    expect(state.precision[1]).toBeCloseTo(0, 12);
    // Each clean image: (1/1.015 + 4/3.985) = its own mean squared distance, the unit of the score.
    expect(state.scale).toBeCloseTo(1 / 1.015 + 4 / 3.985, 6);
    for (const f of clean) expect(detector.score(state, f)).toBeCloseTo(1, 6);
  });

  test('scored against the predicted class; the standard deviations after the means do not count', () => {
    const unit = state.scale;
    // Predicted class 1 at its own mean: 0; predicted class 0 at class 1's mean: 100/1.015 per unit.
    expect(detector.score(state, image(10, 0, 1, [50, -50]))).toBeCloseTo(0, 9);
    expect(detector.score(state, image(10, 0, 0, [0, 0]))).toBeCloseTo(100 / 1.015 / unit, 6);
    // Channel 1 varies more, so the same step along it counts less.
    expect(detector.score(state, image(0, 3, 0))).toBeLessThan(detector.score(state, image(3, 0, 0)));
  });

  test('the tensor score equals the plain one, with the class held at the argmax', () => {
    const images = [image(1, 2, 0), image(7, -3, 1), image(4, 4, 0), image(12, 1, 1)];
    const batch = {
      activations: { c: tf.tensor2d(images.map((f) => Array.from(f.activations.c))) },
    } as unknown as TensorFeatures;
    const t = detector.scoreTensor(state, batch, tf.tensor1d([0, 1, 0, 1], 'int32')).arraySync();
    images.forEach((f, i) => expect(t[i]).toBeCloseTo(detector.score(state, f), 3));
  });

  test('names: one per layer, and the layer read back from the name', () => {
    expect(channelMahalanobisName('conv2')).toBe('channelMahalanobis:conv2');
    expect(channelMahalanobisLayer('channelMahalanobis:conv2')).toBe('conv2');
    expect(channelMahalanobisLayer('mahalanobis')).toBeUndefined();
    expect(channelMahalanobis('conv2')).toBe(channelMahalanobis('conv2'));
    expect(channelMahalanobis('conv1').name).toBe('channelMahalanobis:conv1');
    expect(screeningDetectors('fc1', false, ['conv1']).map((d) => d.name)).not.toContain('channelMahalanobis:conv1');
    expect(screeningDetectors('fc1', ['channelMahalanobis'], ['conv1', 'conv2']).map((d) => d.name)).toEqual(
      expect.arrayContaining(['channelMahalanobis:conv1', 'channelMahalanobis:conv2']),
    );
  });

  test('a layer that is not a pooled conv layer (odd width), or is missing, is refused by name', () => {
    const odd = { ...data, clean: data.clean.map((f) => ({ ...f, activations: { c: new Float32Array(3) } })) };
    expect(() => detector.fit(odd)).toThrow(/'c' gives 3 values per image/);
    expect(() => channelMahalanobis('nope').fit(data)).toThrow(/no activation layer 'nope'/);
  });
});

test("calibration attacks' weights: each image alike, or each attack alike, summing to the rows either way", () => {
  expect(attackRowWeights([0, 0, 1], 'image')).toEqual([1, 1, 1]);
  const w = attackRowWeights([0, 0, 0, 1, 2, 2], 'attack');
  expect(w.reduce((a, b) => a + b, 0)).toBeCloseTo(6, 12);
  // Attack 0's three images share what attack 1's one image has alone.
  expect(w[0] * 3).toBeCloseTo(w[3], 12);
  expect(w[4] * 2).toBeCloseTo(w[3], 12);
});

describe('on the bundled model', () => {
  let model: InferenceModel;
  let calibration: Calibration;

  beforeAll(async () => {
    model = await InferenceModel.load(BUNDLED_MODEL_DIR);
    calibration = await smallCalibration(model, { channelMahalanobis: true, attackWeights: 'attack' });
  });
  afterAll(() => model.dispose());

  test('calibrate --channel-mahalanobis fits one per conv layer, each an input of the verdict; the screener runs them by name', async () => {
    expect(model.spatialLayers).toEqual(['conv1', 'conv2']);
    const names = ['channelMahalanobis:conv1', 'channelMahalanobis:conv2'];
    expect(Object.keys(calibration.detectors)).toEqual(expect.arrayContaining(names));
    expect(calibration.combined.detectors).toEqual(expect.arrayContaining(names));
    const screener = new Screener(calibration, model.metadata.labels);
    expect(screener.detectorNames).toEqual(expect.arrayContaining(names));
    const plain = await smallCalibration(model);
    expect(Object.keys(plain.detectors).filter((n) => n.startsWith('channelMahalanobis'))).toEqual([]);

    // Their tensor scores equal the plain ones on real images.
    const fixtures = fixtureLabels().slice(0, 6);
    const pixels = new Float32Array(fixtures.length * 784);
    for (const [i, f] of fixtures.entries()) pixels.set(await fixturePixels(f.file), i * 784);
    const outs = splitBatch(await model.runBatch(pixels, fixtures.length, screener.extras));
    const x = tf.tensor4d(pixels, [fixtures.length, 28, 28, 1]);
    const f = tensorFeatures(model, x, calibration);
    const classes = tf.argMax(f.logits, 1) as tf.Tensor1D;
    for (const name of names) {
      const d = screener.detectors.find((k) => k.name === name)!;
      const t = d.scoreTensor(calibration.detectors[name], f, classes).arraySync();
      outs.forEach((o, i) => expect(t[i]).toBeCloseTo(d.score(calibration.detectors[name], screener.features(o)), 2));
    }
  });
});
