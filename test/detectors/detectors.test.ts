/**
 * The detectors: known answers on synthetic features, the differentiable scores agreeing with the
 * plain ones, the combined regression, and the adaptive attack's detector term doing its job.
 */
import * as tf from '@tensorflow/tfjs';
import { detectorAwareTarget } from '../../src/attacks/adaptive';
import { getAttack } from '../../src/attacks/registry';
import { modelTarget } from '../../src/attacks/target';
import type { Calibration } from '../../src/calibration/calibrationFile';
import { combinedScore, combinedScoreTensor, fitCombined } from '../../src/detectors/combined';
import { FitData, ImageFeatures } from '../../src/detectors/detector';
import { highFrequencyEnergy } from '../../src/detectors/highFrequencyEnergy';
import { lowPassDisagreement } from '../../src/detectors/lowPassDisagreement';
import { initBackend } from '../../src/engine/backends';
import { InferenceModel, splitBatch } from '../../src/engine/model';
import { highFrequencyShareImages } from '../../src/engine/spectra';
import { auroc } from '../../src/evaluation/metrics';
import { Screener } from '../../src/screening/screener';
import { tensorFeatures } from '../../src/screening/tensorFeatures';
import { smallCalibration } from '../helpers/calibration';
import { BUNDLED_MODEL_DIR, fixtureLabels, fixturePixels } from '../helpers/fixtures';

let model: InferenceModel;
let calibration: Calibration;
let screener: Screener;
let pixels: Float32Array;
let labels: Int32Array;

beforeAll(async () => {
  await initBackend('wasm');
  model = await InferenceModel.load(BUNDLED_MODEL_DIR);
  calibration = await smallCalibration(model);
  screener = new Screener(calibration, model.metadata.labels);
  const fixtures = fixtureLabels();
  pixels = new Float32Array(fixtures.length * 784);
  for (const [i, f] of fixtures.entries()) pixels.set(await fixturePixels(f.file), i * 784);
  labels = Int32Array.from(fixtures, (f) => f.label);
});
afterAll(() => model.dispose());

const features = (probs: number[], share: Record<number, number>, lowPassProbs?: number[]): ImageFeatures => ({
  probs: Float32Array.from(probs),
  logits: Float32Array.from(probs),
  activations: {},
  hfShare: new Map(Object.entries(share).map(([k, v]) => [Number(k), Float32Array.of(v)])),
  lowPassProbs: lowPassProbs && Float32Array.from(lowPassProbs),
});

test('the spectral shares of a constant image are ~0 and of a checkerboard mostly high, at every cut-off and channel', async () => {
  const flat = tf.fill([1, 8, 8, 3], 0.5) as tf.Tensor4D;
  const board = tf.tensor4d(
    Array.from({ length: 64 * 3 }, (_, i) => (((Math.floor(i / 3) % 8) + Math.floor(i / 24)) % 2) * 0.8),
    [1, 8, 8, 3],
  );
  const shares = highFrequencyShareImages(tf.concat([flat, board]) as tf.Tensor4D, [0.1, 0.3]);
  expect(shares.shape).toEqual([2, 2, 4]); // R, G, B and luminance
  const v = await shares.data();
  for (let i = 0; i < 8; i++) expect(v[i]).toBeLessThan(1e-3);
  for (let i = 8; i < 16; i++) expect(v[i]).toBeGreaterThan(0.9);
  tf.dispose([flat, board, shares]);
});

test('the high-frequency sieve scores against the predicted class and picks the cut-off that separates best', () => {
  // Class 0 is naturally textured (share 0.3 ± 0.02), class 1 smooth (0.01 ± 0.002); attacks add energy above 0.4 only.
  const clean: ImageFeatures[] = [];
  const adversarial: ImageFeatures[] = [];
  for (let i = 0; i < 40; i++) {
    const jitter = 1 + 0.05 * Math.sin(i * 1.7);
    clean.push(features([1, 0], { 0.2: 0.3 * jitter, 0.4: 0.2 * jitter }));
    clean.push(features([0, 1], { 0.2: 0.01 * jitter, 0.4: 0.005 * jitter }));
    adversarial.push(features([0, 1], { 0.2: 0.011 * jitter, 0.4: 0.05 * jitter }));
  }
  const data: FitData = { clean, labels: Int32Array.from(clean, (_, i) => i % 2), adversarial, numClasses: 2 };
  const state = highFrequencyEnergy.fit(data);
  expect(state.cutoff).toBe(0.4);
  // A textured image predicted as the textured class is typical; the same share predicted as the smooth class is not.
  expect(highFrequencyEnergy.score(state, features([1, 0], { 0.2: 0.3, 0.4: 0.2 }))).toBeLessThan(2);
  expect(highFrequencyEnergy.score(state, features([0, 1], { 0.2: 0.3, 0.4: 0.2 }))).toBeGreaterThan(10);
});

test('low-pass disagreement is the L1 distance of the probabilities before and after the filter', () => {
  expect(lowPassDisagreement.score({}, features([0.9, 0.1], {}, [0.9, 0.1]))).toBeCloseTo(0, 6);
  expect(lowPassDisagreement.score({}, features([0.9, 0.1], {}, [0.2, 0.8]))).toBeCloseTo(1.4, 6);
});

test('the combined regression weighs the detector that separates and ignores the one that does not', () => {
  const clean = Array.from({ length: 200 }, (_, i) => [Math.sin(i) * 0.5, Math.cos(i * 3)]);
  const adversarial = Array.from({ length: 200 }, (_, i) => [3 + Math.sin(i) * 0.5, Math.cos(i * 5)]);
  const state = fitCombined(['useful', 'noise'], clean, adversarial);
  expect(state.weights[0]).toBeGreaterThan(1);
  expect(Math.abs(state.weights[1])).toBeLessThan(Math.abs(state.weights[0]) / 5);
  const s = (rows: number[][]) => rows.map((r) => combinedScore(state, r));
  expect(auroc(s(adversarial), s(clean))).toBe(1);
  const t = combinedScoreTensor(state, [tf.tensor1d([0.1, 3.2]), tf.tensor1d([0.5, -0.2])]);
  const v = t.dataSync();
  expect(v[0]).toBeCloseTo(combinedScore(state, [0.1, 0.5]), 4);
  expect(v[1]).toBeCloseTo(combinedScore(state, [3.2, -0.2]), 4);
  t.dispose();
});

test('hidden units let the verdict say "either detector", which a linear sum cannot; the tensor score agrees', () => {
  // Two attacks, each seen by one detector only, and noise on the other: an OR of the two.
  const wave = (i: number, f: number) => Math.sin(i * f) * 0.5;
  const clean = Array.from({ length: 300 }, (_, i) => [wave(i, 1.3), wave(i, 2.9)]);
  const adversarial = [
    ...Array.from({ length: 150 }, (_, i) => [4 + wave(i, 1.7), wave(i, 3.7) - 0.8]),
    ...Array.from({ length: 150 }, (_, i) => [wave(i, 2.3) - 0.8, 4 + wave(i, 0.7)]),
  ];
  const auc = (state: ReturnType<typeof fitCombined>) =>
    auroc(
      adversarial.map((r) => combinedScore(state, r)),
      clean.map((r) => combinedScore(state, r)),
    );
  const linear = fitCombined(['a', 'b'], clean, adversarial);
  const hidden = fitCombined(['a', 'b'], clean, adversarial, { hidden: 8, seed: 3 });
  expect(hidden.hidden!.out).toHaveLength(8);
  expect(auc(hidden)).toBeGreaterThanOrEqual(auc(linear));
  expect(auc(hidden)).toBeGreaterThan(0.99);
  expect(fitCombined(['a', 'b'], clean, adversarial, { hidden: 8, seed: 3 })).toEqual(hidden); // seeded
  const rows = [clean[0], adversarial[0], adversarial[200]];
  const t = combinedScoreTensor(hidden, [tf.tensor1d(rows.map((r) => r[0])), tf.tensor1d(rows.map((r) => r[1]))]);
  const v = t.dataSync();
  rows.forEach((r, i) => expect(v[i]).toBeCloseTo(combinedScore(hidden, r), 3));
  t.dispose();
});

test('each detector’s differentiable score agrees with its plain score on real images', async () => {
  const out = splitBatch(await model.runBatch(pixels, 20, screener.extras));
  const plain = out.map((o) =>
    screener.detectors.map((d) => d.score(calibration.detectors[d.name], screener.features(o))),
  );
  const before = tf.memory().numTensors;
  const x = tf.tensor4d(pixels, [20, 28, 28, 1]);
  const scores = tf.tidy(() => {
    const f = tensorFeatures(model, x, calibration);
    const classes = tf.argMax(f.logits, 1) as tf.Tensor1D;
    return tf.stack(
      screener.detectors.map((d) => d.scoreTensor(calibration.detectors[d.name], f, classes)),
      1,
    );
  });
  const t = (await scores.array()) as number[][];
  tf.dispose([x, scores]);
  // The detectors' constants are cached once per state; the second call must not leak.
  tf.tidy(() => {
    const f = tensorFeatures(model, tf.tensor4d(pixels, [20, 28, 28, 1]), calibration);
    screener.detectors.forEach((d) =>
      d.scoreTensor(calibration.detectors[d.name], f, tf.argMax(f.logits, 1) as tf.Tensor1D),
    );
  });
  expect(tf.memory().numTensors - before).toBeLessThanOrEqual(40);
  plain.forEach((row, i) =>
    row.forEach((s, k) => expect(Math.abs(t[i][k] - s)).toBeLessThan(1e-3 * Math.max(1, Math.abs(s)))),
  );
});

test('the adaptive attack’s detector term lowers the scores it targets', async () => {
  const x = tf.tensor4d(pixels, [20, 28, 28, 1]);
  const pgd = getAttack('pgd');
  const options = { epsilon: 0.1, steps: 10, seed: 5 };
  const plainAdv = await pgd.run(modelTarget(model), x, labels, options);
  const adaptiveTarget = detectorAwareTarget(model, screener);
  const adaptiveAdv = await pgd.run(adaptiveTarget, x, labels, options);
  const penalty = (t: tf.Tensor4D) => tf.tidy(() => tf.mean(adaptiveTarget.penalty!(t)).dataSync()[0]);
  const combinedOf = async (t: tf.Tensor4D) => {
    const out = splitBatch(await model.runBatch((await t.data()) as Float32Array, 20, screener.extras));
    return out.map((o) => screener.screen(o).detection.score).reduce((a, b) => a + b, 0) / 20;
  };
  expect(penalty(adaptiveAdv)).toBeLessThan(penalty(plainAdv));
  expect(await combinedOf(adaptiveAdv)).toBeLessThan(await combinedOf(plainAdv));
  tf.dispose([x, plainAdv, adaptiveAdv]);
});
