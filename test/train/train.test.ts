/**
 * The training path end to end on real data: a few steps on a small subset of Fashion-MNIST
 * (Debian's dataset-fashion-mnist; .ci/run installs it), in-process and data-parallel, then the
 * serving model saved and loaded back. CI never retrains the reference model.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DEFAULT_FASHION_MNIST_DIR, FASHION_LABELS, loadFashionMnist } from '../../src/data/fashionMnist';
import { initBackend } from '../../src/engine/backends';
import { InferenceModel } from '../../src/engine/model';
import { saveModel } from '../../src/engine/modelStore';
import { ACTIVATION_LAYERS, buildServingModel, buildTrainingModel } from '../../src/train/fashionCnn';
import { accuracy, learningRateAt, train } from '../../src/train/trainer';

const DATA = process.env.FASHION_MNIST_DIR ?? DEFAULT_FASHION_MNIST_DIR;

beforeAll(async () => {
  await initBackend('wasm');
});

test('a small model trained for 100 steps learns (loss falls, test accuracy well above chance)', async () => {
  const losses: number[] = [];
  const result = await train({
    dataDir: DATA,
    epochs: 4,
    batchSize: 32,
    learningRate: 3e-3,
    lrDecay: 1,
    seed: 7,
    workers: 1,
    limit: 800,
    model: { conv1Filters: 8, conv2Filters: 8, hiddenUnits: 16, dropout: 0 },
    onProgress: (p) => losses.push(p.loss),
  });
  expect(result.history).toHaveLength(4);
  expect(result.history[3].loss).toBeLessThan(result.history[0].loss * 0.8);
  const test = loadFashionMnist('test', DATA, 500);
  expect(await accuracy(result.model, test)).toBeGreaterThan(0.4);
  result.model.dispose();
});

test('training is reproducible from its seed', async () => {
  const run = async () => {
    const r = await train({
      dataDir: DATA,
      epochs: 1,
      batchSize: 16,
      learningRate: 1e-3,
      lrDecay: 1,
      seed: 3,
      workers: 1,
      limit: 64,
      model: { conv1Filters: 4, conv2Filters: 4, hiddenUnits: 8 },
    });
    const w = r.model.getWeights().map((t) => Array.from(t.dataSync()));
    r.model.dispose();
    return { w, loss: r.history[0].loss };
  };
  const a = await run();
  const b = await run();
  expect(b.loss).toBe(a.loss);
  expect(b.w).toEqual(a.w);
});

// train() compares every worker's weights with the first's, bit for bit, before it returns.
test('data-parallel training over 2 worker threads runs and keeps the replicas in step', async () => {
  const result = await train({
    dataDir: DATA,
    epochs: 1,
    batchSize: 32,
    learningRate: 1e-3,
    lrDecay: 1,
    seed: 5,
    workers: 2,
    limit: 256,
    model: { conv1Filters: 4, conv2Filters: 4, hiddenUnits: 8 },
  });
  expect(result.history[0].trainAccuracy).toBeGreaterThan(0);
  expect(result.samples).toBe(256);
  result.model.dispose();
});

test.each(['relu', 'swish'] as const)('batch norm folds into conv2 without changing the output (%s)', (activation) => {
  const trained = buildTrainingModel({ seed: 11, activation });
  const bn = trained.getLayer('bn2');
  tf.tidy(() =>
    bn.setWeights(
      bn
        .getWeights()
        .map((w, i) =>
          i === 3 ? tf.randomUniform(w.shape, 0.5, 2, 'float32', 1) : tf.randomNormal(w.shape, 0, 1, 'float32', i),
        ),
    ),
  );
  const serving = buildServingModel(trained, { seed: 11, activation });
  const x = tf.randomUniform([3, 28, 28, 1], 0, 1, 'float32', 2);
  const a = tf.softmax(trained.predict(x) as tf.Tensor);
  const b = serving.predict(x) as tf.Tensor;
  expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeLessThan(1e-5);
  expect(serving.layers.map((l) => l.name)).toEqual([
    'conv1',
    'pool1',
    'conv2',
    'pool2',
    'flatten',
    'fc1',
    'logits',
    'probs',
  ]);
  // swish is x·sigmoid(x): hidden activations dip below 0 (to −0.28), where ReLU's never do.
  const conv1 = tf.model({ inputs: serving.inputs, outputs: serving.getLayer('conv1').output as tf.SymbolicTensor });
  const low = tf.tidy(() => tf.min(conv1.predict(x) as tf.Tensor).dataSync()[0]);
  if (activation === 'swish') {
    expect(low).toBeLessThan(0);
    expect(low).toBeGreaterThanOrEqual(-0.2785);
  } else expect(low).toBe(0);
  tf.dispose([x, a, b]);
  trained.dispose();
  serving.dispose();
});

test('an unknown activation is refused, naming it', () => {
  expect(() => buildTrainingModel({ seed: 1, activation: 'tanh' as 'relu' })).toThrow(
    /activation: expected one of relu, swish, got 'tanh'/,
  );
});

test('a saved model loads back through the file-system handler with the same outputs', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-save-'));
  try {
    const serving = buildServingModel(buildTrainingModel({ seed: 2 }));
    const sha = await saveModel(serving, dir, {
      id: 'tmp',
      labels: [...FASHION_LABELS],
      inputShape: [28, 28, 1],
      outputLayer: 'probs',
      logitsLayer: 'logits',
      activationLayers: [...ACTIVATION_LAYERS],
    });
    const loaded = await InferenceModel.load(dir);
    expect(loaded.stored.sha256).toBe(sha);
    const px = new Float32Array(2 * 784).map((_, i) => (i % 13) / 13);
    const expected = tf.tidy(() => (serving.predict(tf.tensor4d(px, [2, 28, 28, 1])) as tf.Tensor).dataSync());
    const got = (await loaded.runBatch(px, 2)).probs;
    Array.from(got).forEach((p, i) => expect(p).toBeCloseTo(expected[i], 6));
    loaded.dispose();
    serving.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('learning-rate schedules: cosine warms up to the peak, then falls to 1 % of it; exponential decays per epoch', () => {
  const cos = { learningRate: 2e-3, lrSchedule: 'cosine' as const, lrDecay: 1, warmupEpochs: 1, epochs: 10 };
  expect(learningRateAt(cos, 0, 100)).toBeCloseTo(2e-5);
  expect(learningRateAt(cos, 99, 100)).toBeCloseTo(2e-3);
  expect(learningRateAt(cos, 550, 100)).toBeCloseTo(2e-5 + 0.5 * (2e-3 - 2e-5), 8); // half-way down
  expect(learningRateAt(cos, 999, 100)).toBeCloseTo(2e-5, 6);
  const exp = { learningRate: 1e-3, lrSchedule: 'exponential' as const, lrDecay: 0.5, epochs: 3 };
  expect(learningRateAt(exp, 99, 100)).toBe(1e-3);
  expect(learningRateAt(exp, 250, 100)).toBe(2.5e-4);
});
