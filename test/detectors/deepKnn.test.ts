/**
 * Deep k-NN: known answers on a hand-made reference set, the differentiable score's value (the hard
 * count) and gradient (the soft k-NN's), float16 storage, and screening with calibrations that have
 * no deep k-NN state (older files, another model's).
 */
import * as tf from '@tensorflow/tfjs';
import { detectorAwareTarget } from '../../src/attacks/adaptive';
import type { Calibration } from '../../src/calibration/calibrationFile';
import { fitCombined } from '../../src/detectors/combined';
import { deepKnnDetector, DeepKnnState, nearestReferences, wrongNeighbours } from '../../src/detectors/deepKnn';
import type { FitData, ImageFeatures, TensorFeatures } from '../../src/detectors/detector';
import { initBackend } from '../../src/engine/backends';
import { InferenceModel, splitBatch } from '../../src/engine/model';
import { Screener } from '../../src/screening/screener';
import { tensorFeatures } from '../../src/screening/tensorFeatures';
import { decodeFloat16, encodeFloat16, fromHalfBits, toHalfBits } from '../../src/util/float16';
import { smallCalibration } from '../helpers/calibration';
import { BUNDLED_MODEL_DIR, fixturePixels, fixtureLabels } from '../helpers/fixtures';

beforeAll(async () => {
  await initBackend('wasm');
});

const without = <T>(record: Readonly<Record<string, T>>, key: string): Record<string, T> =>
  Object.fromEntries(Object.entries(record).filter(([k]) => k !== key));

/** An image with activations at two layers and a prediction (probabilities of 2 classes). */
const image = (early: number[], late: number[], predicted: number): ImageFeatures => ({
  probs: Float32Array.from([1 - predicted, predicted]),
  logits: Float32Array.from([1 - predicted, predicted]),
  activations: { early: Float32Array.from(early), late: Float32Array.from(late) },
  hfShare: new Map(),
});

/**
 * Two classes, each a cluster of 4 points at both layers: class 0 around (0, 0), class 1 around
 * (8, 8) (the offsets ±1 keep the points apart and float16-exact).
 */
function toyFit(): FitData {
  const offsets = [
    [1, 0],
    [-1, 0],
    [0, 1],
    [0, -1],
  ];
  const clean: ImageFeatures[] = [];
  const labels: number[] = [];
  for (const c of [0, 1])
    for (const [dx, dy] of offsets) {
      const p = [c * 8 + dx, c * 8 + dy];
      clean.push(image(p, p, c));
      labels.push(c);
    }
  return { clean, labels: Int32Array.from(labels), adversarial: [], numClasses: 2 };
}

const toy = deepKnnDetector({ referencesPerClass: 10, neighbours: 3, projectedWidth: 8 });

test('the count: a clean image 0, a PGD-like trajectory k at the early layer, a boundary image a mixed late neighbourhood', () => {
  const state = toy.fit(toyFit());
  expect(state.labels).toHaveLength(8);
  // In class 0's cluster at both layers, predicted 0: every neighbour agrees.
  expect(toy.score(state, image([0, 0], [0, 0], 0))).toBe(0);
  expect(wrongNeighbours(state, image([0, 0], [0, 0], 0), 0)).toEqual([0, 0]);
  // Near the origin class early and at the target late, predicted as the target: 3 of 3 early neighbours disagree.
  expect(wrongNeighbours(state, image([0, 0.5], [8, 8.5], 1), 1)).toEqual([3, 0]);
  expect(toy.score(state, image([0, 0.5], [8, 8.5], 1))).toBe(3);
  // Predicted 1 while in class 0's cluster everywhere: every neighbour disagrees.
  expect(toy.score(state, image([0, 0], [0, 0], 1))).toBe(6);
  // Between the clusters, nearer class 1 at the late layer: its 3 nearest are two of class 1 and one of class 0.
  const boundary = image([8, 8], [4.4, 4.4], 1);
  expect(wrongNeighbours(state, boundary, 1)).toEqual([0, 1]);
});

test('the nearest references, ties to the lower index', () => {
  const refs = Float32Array.from([0, 0, 3, 0, 1, 0, 1, 0, 5, 5]);
  expect(nearestReferences([0.9, 0], refs, 2, 2).sort()).toEqual([2, 3]);
  expect(nearestReferences([0, 0], refs, 2, 3).sort()).toEqual([0, 2, 3]);
  expect(nearestReferences([1, 0], refs, 2, 1)).toEqual([2]);
  expect(nearestReferences([5, 5], refs, 2, 9).sort()).toEqual([0, 1, 2, 3, 4]); // k above the count: all
});

/** The toy images as a differentiable batch. */
function toyBatch(images: ImageFeatures[]): TensorFeatures {
  const stack = (layer: string) => tf.tensor2d(images.map((f) => Array.from(f.activations[layer])));
  return {
    probs: tf.tensor2d(images.map((f) => Array.from(f.probs))),
    logits: tf.tensor2d(images.map((f) => Array.from(f.logits))),
    activations: { early: stack('early'), late: stack('late') },
    hfShare: () => tf.zeros([images.length, 1]),
    lowPassProbs: tf.tensor2d(images.map((f) => Array.from(f.probs))),
  };
}

test('the tensor score has the hard count as its value and the soft k-NN as its gradient, which pulls towards the predicted class', () => {
  const state = toy.fit(toyFit());
  const images = [image([0, 0], [0, 0], 0), image([0, 0.5], [8, 8.5], 1), image([8, 8], [4.4, 4.4], 1)];
  const before = tf.memory().numTensors;
  const value = tf.tidy(() => {
    const b = toyBatch(images);
    return toy.scoreTensor(state, b, tf.tensor1d([0, 1, 1], 'int32'));
  });
  expect(Array.from(value.dataSync())).toEqual(images.map((f) => toy.score(state, f)));
  value.dispose();
  // A PGD-like image predicted 1 deep in class 0's early cluster (class 1's references weigh e^−30 of
  // its soft neighbourhood): the hard count is flat there; the soft k-NN's gradient is not, and
  // descending it moves the early activation towards class 1 (8, 8).
  const early = tf.tensor2d([[0, 0.5]]);
  const grad = tf.grad((a: tf.Tensor) =>
    toy.scoreTensor(
      state,
      { ...toyBatch([images[1]]), activations: { early: a as tf.Tensor2D, late: tf.tensor2d([[8, 8.5]]) } },
      tf.tensor1d([1], 'int32'),
    ),
  );
  const g = grad(early).dataSync();
  expect(Math.hypot(g[0], g[1])).toBeGreaterThan(0);
  expect(-g[0] * 8 - g[1] * 7.5).toBeGreaterThan(0.5 * Math.hypot(g[0], g[1]) * Math.hypot(8, 7.5)); // −∇ points towards (8, 8)
  early.dispose();
  expect(tf.memory().numTensors - before).toBeLessThanOrEqual(12); // the state's cached constants
});

test('float16 storage: exact where binary16 is, rounded to nearest even, overflow and underflow', () => {
  for (const v of [0, 1, -2, 0.5, 65504, 2 ** -14, 2 ** -24, 1.5]) expect(fromHalfBits(toHalfBits(v))).toBe(v);
  expect(toHalfBits(1 + 2 ** -11)).toBe(toHalfBits(1)); // a tie rounds to the even mantissa
  expect(fromHalfBits(toHalfBits(1 + 3 * 2 ** -11))).toBe(1 + 2 * 2 ** -10);
  expect(fromHalfBits(toHalfBits(1e6))).toBe(Infinity);
  expect(fromHalfBits(toHalfBits(1e-9))).toBe(0);
  const values = Float32Array.from({ length: 200 }, (_, i) => Math.sin(i) * 30);
  const back = decodeFloat16(encodeFloat16(values));
  values.forEach((v, i) => expect(Math.abs(back[i] - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11 + 1e-7));
});

describe('on the bundled model', () => {
  let model: InferenceModel;
  let calibration: Calibration;
  let pixels: Float32Array;

  beforeAll(async () => {
    model = await InferenceModel.load(BUNDLED_MODEL_DIR);
    calibration = await smallCalibration(model, { deepKnn: true });
    const fixtures = fixtureLabels();
    pixels = new Float32Array(fixtures.length * 784);
    for (const [i, f] of fixtures.entries()) pixels.set(await fixturePixels(f.file), i * 784);
  });
  afterAll(() => model.dispose());

  test('calibrate --deep-knn fits it, bounded: float16 references of at most 32 principal axes a layer; without, not', async () => {
    expect(Object.keys((await smallCalibration(model)).detectors)).not.toContain('deepKnn');
    const state = calibration.detectors.deepKnn as DeepKnnState;
    expect(state.layers).toEqual(['conv1', 'conv2', 'fc1', 'logits']);
    expect(state.perLayer.conv2.dims).toBe(32);
    expect(state.perLayer.logits.dims).toBe(10);
    expect(state.perLayer.logits.projection).toBeUndefined();
    const refs = state.labels.length;
    expect(Buffer.from(state.perLayer.fc1.references, 'base64').length).toBe(refs * 32 * 2);
    expect(calibration.combined.detectors).toContain('deepKnn');
  });

  test('on real images the tensor score equals the plain one (a neighbour may swap at the k-th place under rounding)', async () => {
    const n = 20;
    const screener = new Screener(calibration, model.metadata.labels);
    const state = calibration.detectors.deepKnn as DeepKnnState;
    const detector = screener.detectors.find((d) => d.name === 'deepKnn')!;
    const plain = splitBatch(await model.runBatch(pixels, n, screener.extras)).map((o) =>
      detector.score(state, screener.features(o)),
    );
    const x = tf.tensor4d(pixels, [n, 28, 28, 1]);
    const t = tf.tidy(() => {
      const f = tensorFeatures(model, x, calibration);
      return detector.scoreTensor(state, f, tf.argMax(f.logits, 1) as tf.Tensor1D);
    });
    const tensor = Array.from(await t.data());
    tf.dispose([x, t]);
    // Integer counts: equal, or one apart where a reference at the k-th place swapped.
    tensor.forEach((v, i) => expect(Math.abs(v - plain[i])).toBeLessThanOrEqual(1));
    expect(tensor.filter((v, i) => v === plain[i]).length).toBeGreaterThanOrEqual(n - 1);
  });

  test('a calibration without deep k-NN (older files, another model) screens without it; a required detector missing fails', () => {
    const others = without(calibration.detectors, 'deepKnn');
    const names = calibration.combined.detectors.filter((d) => d !== 'deepKnn');
    const scoresOf = (k: number) => [0.1 * k, 0.2 * k, 0.3, 0.1 * k, 0.2].slice(0, names.length);
    const older: Calibration = {
      ...calibration,
      detectors: others,
      combined: fitCombined(
        names,
        Array.from({ length: 20 }, (_, k) => scoresOf(k % 3)),
        Array.from({ length: 20 }, (_, k) => scoresOf(5 + (k % 3))),
      ),
      holdoutScores: without(calibration.holdoutScores, 'deepKnn'),
    };
    const screener = new Screener(older, model.metadata.labels);
    expect(screener.detectorNames).not.toContain('deepKnn');
    expect(screener.detectorNames).toContain('combined');
    expect(Object.keys(screener.thresholds(0.05))).not.toContain('deepKnn');
    // The verdict names a detector the calibration has no state for: refused, with its name.
    expect(() => new Screener({ ...older, combined: calibration.combined }, model.metadata.labels)).toThrow(/deepKnn/);
    const withoutRequired = without(calibration.detectors, 'mahalanobis');
    expect(() => new Screener({ ...calibration, detectors: withoutRequired }, model.metadata.labels)).toThrow(
      /mahalanobis/,
    );
  });

  test('the end-to-end attacker’s penalty carries deep k-NN’s excess over its threshold, with a gradient', async () => {
    const n = 8;
    const state = calibration.detectors.deepKnn as DeepKnnState;
    const withThreshold = (t: number) =>
      new Screener(
        { ...calibration, holdoutScores: { ...calibration.holdoutScores, deepKnn: new Array(100).fill(t) } },
        model.metadata.labels,
      );
    const low = withThreshold(-1); // every image over it
    const high = withThreshold(1e6); // none
    const plain = splitBatch(await model.runBatch(pixels.subarray(0, n * 784), n, low.extras)).map((o) =>
      low.detectors.find((d) => d.name === 'deepKnn')!.score(state, low.features(o)),
    );
    const spread = calibration.combined.spread[calibration.combined.detectors.indexOf('deepKnn')];
    const x = tf.tensor4d(pixels.subarray(0, n * 784), [n, 28, 28, 1]);
    const [pLow, pHigh] = [low, high].map((s) => detectorAwareTarget(model, s));
    const excess = tf.tidy(() => tf.sub(pLow.penalty!(x), pHigh.penalty!(x)));
    // Only deep k-NN's threshold differs: the difference is its excess, in units of its clean spread.
    Array.from(await excess.data()).forEach((v, i) => expect(v).toBeCloseTo((plain[i] + 1) / spread, 2));
    // Its gradient (the soft k-NN's): the hard count alone would give none.
    const grad = tf.tidy(() =>
      tf.norm(
        tf.grad((xa: tf.Tensor) => tf.sum(tf.sub(pLow.penalty!(xa as tf.Tensor4D), pHigh.penalty!(xa as tf.Tensor4D))))(
          x,
        ),
      ),
    );
    expect((await grad.data())[0]).toBeGreaterThan(0);
    tf.dispose([x, excess, grad]);
  });
});
