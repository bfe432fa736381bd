/**
 * Boundary margin: known answers, the tensor score equal to the plain one (also with the class held
 * fixed away from the argmax), gradients, and calibration: fitted and weighed in the verdict only
 * when asked; a minimal-confidence CW image scores near 0, far above the clean images.
 */
import * as tf from '@tensorflow/tfjs';
import { getAttack } from '../../src/attacks/registry';
import { attackInBatches } from '../../src/attacks/runAttack';
import { modelTarget } from '../../src/attacks/target';
import type { Calibration } from '../../src/calibration/calibrationFile';
import { boundaryMargin, negativeMargin } from '../../src/detectors/boundaryMargin';
import type { TensorFeatures } from '../../src/detectors/detector';
import { initBackend } from '../../src/engine/backends';
import { InferenceModel, splitBatch } from '../../src/engine/model';
import { Screener } from '../../src/screening/screener';
import { smallCalibration } from '../helpers/calibration';
import { BUNDLED_MODEL_DIR, fixtureLabels, fixturePixels } from '../helpers/fixtures';

beforeAll(async () => {
  await initBackend('wasm');
});

const features = (logits: number[]) => ({
  probs: new Float32Array(logits.length),
  logits: Float32Array.from(logits),
  activations: {},
  hfShare: new Map(),
});

test('known answers: runner-up minus top logit; 0 on a tie; order of the logits does not matter', () => {
  expect(negativeMargin([1, 5, 3])).toBe(-2);
  expect(negativeMargin([3, 5, 1])).toBe(-2);
  expect(negativeMargin([5, 1, 3])).toBe(-2);
  expect(negativeMargin([2, 2, -7])).toBe(0);
  expect(negativeMargin([-1, -4])).toBe(-3);
  expect(boundaryMargin.score({}, features([0.5, 9, -3, 8.25]))).toBeCloseTo(-0.75, 6);
});

test('the tensor score equals the plain one at the argmax; held at another class it is that class’s distance to the best other', () => {
  const logits = [
    [1, 5, 3],
    [4, 4, 0],
    [-2, -1, -5],
  ];
  const batch = { logits: tf.tensor2d(logits) } as unknown as TensorFeatures;
  const atArgmax = boundaryMargin.scoreTensor({}, batch, tf.tensor1d([1, 0, 1], 'int32')).arraySync();
  expect(atArgmax).toEqual(logits.map((z) => negativeMargin(z)));
  // Held at class 2 of [1, 5, 3]: 5 − 3 = 2 (on the wrong side of the boundary: positive).
  const held = boundaryMargin.scoreTensor({}, batch, tf.tensor1d([2, 2, 2], 'int32')).arraySync();
  expect(held).toEqual([2, 4, 4]);
  // d/dz: +1 on the best other logit, −1 on the held class, 0 elsewhere.
  const grad = tf
    .grad((z: tf.Tensor) =>
      tf.sum(boundaryMargin.scoreTensor({}, { logits: z } as unknown as TensorFeatures, tf.tensor1d([1], 'int32'))),
    )(tf.tensor2d([[1, 5, 3]]))
    .arraySync();
  expect(grad).toEqual([[0, -1, 1]]);
});

describe('on the bundled model', () => {
  let model: InferenceModel;
  let calibration: Calibration;

  beforeAll(async () => {
    model = await InferenceModel.load(BUNDLED_MODEL_DIR);
    calibration = await smallCalibration(model, { boundaryMargin: true });
  });
  afterAll(() => model.dispose());

  test('calibrate --boundary-margin fits it and weighs it in the verdict; without, it is absent and the screener runs without it', async () => {
    expect(Object.keys(calibration.detectors)).toContain('boundaryMargin');
    expect(calibration.combined.detectors).toContain('boundaryMargin');
    expect(calibration.holdoutScores.boundaryMargin.length).toBeGreaterThan(0);
    const plain = await smallCalibration(model);
    expect(Object.keys(plain.detectors)).not.toContain('boundaryMargin');
    expect(new Screener(plain, model.metadata.labels).detectorNames).not.toContain('boundaryMargin');
    expect(new Screener(calibration, model.metadata.labels).detectorNames).toContain('boundaryMargin');
  });

  test('a minimal-confidence CW image sits at the boundary: its score is above the clean fixtures’ median, within 1 logit of the boundary', async () => {
    const fixtures = fixtureLabels();
    const n = fixtures.length;
    const pixels = new Float32Array(n * 784);
    for (const [i, f] of fixtures.entries()) pixels.set(await fixturePixels(f.file), i * 784);
    const screener = new Screener(calibration, model.metadata.labels);
    const score = async (x: Float32Array, count: number) =>
      splitBatch(await model.runBatch(x, count, screener.extras)).map((o) =>
        boundaryMargin.score({}, screener.features(o)),
      );
    const clean = await score(pixels, n);
    const labels = Int32Array.from(fixtures.map((f) => f.label));
    const adv = await attackInBatches(getAttack('cw'), modelTarget(model), pixels, labels, model.inputShape, {
      epsilon: Infinity,
      steps: 50,
      seed: 1,
    });
    const argmax = (p: ArrayLike<number>) => Array.from(p).indexOf(Math.max(...Array.from(p)));
    const predicted = splitBatch(await model.runBatch(adv, n)).map((o) => argmax(o.probs));
    const fooled = predicted.map((p, i) => (p !== labels[i] ? i : -1)).filter((i) => i >= 0);
    expect(fooled.length).toBeGreaterThan(n / 2);
    const advScores = await score(adv, n);
    const cleanMedian = [...clean].sort((a, b) => a - b)[Math.floor(n / 2)];
    for (const i of fooled) expect(advScores[i]).toBeGreaterThan(cleanMedian);
    // Near the boundary: within 1 logit of it, where clean images rarely are.
    const near = fooled.filter((i) => advScores[i] > -1).length;
    expect(near / fooled.length).toBeGreaterThan(0.8);
  });
});
