import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend } from '../../src/engine/backends';
import { InferenceModel, poolPerChannel } from '../../src/engine/model';
import { loadModel, ModelFileError, saveModel } from '../../src/engine/modelStore';
import { BUNDLED_MODEL_DIR, fixtureLabels, fixturePixels } from '../helpers/fixtures';

let model: InferenceModel;
beforeAll(async () => {
  await initBackend('wasm');
  model = await InferenceModel.load(BUNDLED_MODEL_DIR);
});
afterAll(() => model.dispose());

test('the bundled model loads with its metadata', () => {
  expect(model.metadata.labels).toHaveLength(10);
  expect(model.inputShape).toEqual([28, 28, 1]);
  expect(model.stored.sha256).toMatch(/^[0-9a-f]{64}$/);
});

test('classifies the committed official test images (at least 18 of 20 right)', async () => {
  const fixtures = fixtureLabels();
  const pixels = new Float32Array(fixtures.length * 784);
  for (const [i, f] of fixtures.entries()) pixels.set(await fixturePixels(f.file), i * 784);
  const out = await model.runBatch(pixels, fixtures.length);
  let correct = 0;
  fixtures.forEach((f, i) => {
    const probs = out.probs.subarray(i * 10, (i + 1) * 10);
    if (probs.indexOf(Math.max(...probs)) === f.label) correct++;
  });
  expect(correct).toBeGreaterThanOrEqual(18);
});

test('one forward pass returns probabilities, logits and the named activations, pooled per channel (mean, std)', async () => {
  const out = await model.runBatch(new Float32Array(3 * 784).fill(0.3), 3);
  expect(out.count).toBe(3);
  for (let i = 0; i < 3; i++)
    expect(out.probs.subarray(i * 10, i * 10 + 10).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  expect(Object.fromEntries(Object.entries(out.activations).map(([k, v]) => [k, v.width]))).toEqual({
    conv1: 64,
    conv2: 128,
    fc1: 128,
    logits: 10,
  });
  expect(Array.from(out.activations.logits.values)).toEqual(Array.from(out.logits));
});

test('per-channel pooling: the spatial mean then the standard deviation of each channel', async () => {
  const a = tf.tensor4d([1, 10, 3, 10, 5, 10, 7, 10], [1, 2, 2, 2]); // channel 0: 1,3,5,7; channel 1: all 10
  const pooled = await poolPerChannel(a).data();
  [4, 10, Math.sqrt(5), 0].forEach((v, i) => expect(pooled[i]).toBeCloseTo(v, 3));
  a.dispose();
});

test('softmax of the returned logits is the returned probabilities', async () => {
  const out = await model.runBatch(
    new Float32Array(784).map((_, i) => (i % 7) / 7),
    1,
  );
  const soft = tf.tidy(() => tf.softmax(tf.tensor1d(out.logits)).dataSync());
  soft.forEach((p, i) => expect(p).toBeCloseTo(out.probs[i], 5));
});

test("a Keras-style model ending in Dense(softmax) named as logitsLayer: its logits are split off, sharing the Dense's weights", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-softmax-'));
  try {
    const input = tf.input({ shape: [6, 6, 3] });
    const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
    const hidden = tf.layers.dense({ units: 8, activation: 'relu', name: 'hidden' }).apply(flat) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 4, activation: 'softmax', name: 'predictions' }).apply(hidden);
    const keras = tf.model({ inputs: input, outputs: out as tf.SymbolicTensor });
    await saveModel(keras, dir, {
      id: 'keras-softmax',
      labels: ['a', 'b', 'c', 'd'],
      inputShape: [6, 6, 3],
      outputLayer: 'predictions',
      logitsLayer: 'predictions',
      activationLayers: ['hidden', 'predictions'],
    });
    keras.dispose();
    const m = await InferenceModel.load(dir);
    const pixels = new Float32Array(108).map((_, i) => ((i * 37) % 101) / 101);
    const r = await m.runBatch(pixels, 1);
    // Logits, not probabilities: not a distribution, and their softmax is the probabilities.
    expect(Math.abs(r.logits.reduce((a, b) => a + b) - 1)).toBeGreaterThan(1e-3);
    const soft = tf.tidy(() => tf.softmax(tf.tensor1d(r.logits)).dataSync());
    soft.forEach((p, i) => expect(p).toBeCloseTo(r.probs[i], 5));
    expect(r.probs.reduce((a, b) => a + b)).toBeCloseTo(1, 5);
    // The detectors read the logits under the layer's name, and attacks differentiate them.
    expect(Array.from(r.activations.predictions.values)).toEqual(Array.from(r.logits));
    const x = tf.tensor4d(pixels, [1, 6, 6, 3]);
    const g = tf.grad((v: tf.Tensor) => tf.sum(m.logits(v as tf.Tensor4D)))(x);
    expect(g.shape).toEqual([1, 6, 6, 3]);
    expect(tf.max(tf.abs(g)).dataSync()[0]).toBeGreaterThan(0);
    tf.dispose([x, g]);
    m.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('input gradients have the input shape, are not all zero, and leak nothing', () => {
  const x = tf.fill([4, 28, 28, 1], 0.5) as tf.Tensor4D;
  const labels = new Int32Array([0, 1, 2, 3]);
  model.inputGradient(x, labels).dispose(); // warm-up
  const before = tf.memory().numTensors;
  const g = model.inputGradient(x, labels);
  expect(g.shape).toEqual([4, 28, 28, 1]);
  expect(tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0])).toBeGreaterThan(0);
  g.dispose();
  expect(tf.memory().numTensors).toBe(before);
  x.dispose();
});

test('runBatch leaks no tensors and checks the pixel count', async () => {
  const px = new Float32Array(8 * 784).fill(0.1);
  await model.runBatch(px, 8);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 50; i++) await model.runBatch(px, 8);
  expect(tf.memory().numTensors).toBe(before);
  await expect(model.runBatch(px, 7)).rejects.toThrow(/expected 7×28×28×1 = 5488 pixel values, got 6272/);
});

describe('broken model files stop loading with the file and the reason', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-model-'));
    for (const f of fs.readdirSync(BUNDLED_MODEL_DIR))
      fs.copyFileSync(path.join(BUNDLED_MODEL_DIR, f), path.join(dir, f));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('missing model.json', async () => {
    fs.rmSync(path.join(dir, 'model.json'));
    await expect(loadModel(dir)).rejects.toThrow(new ModelFileError(path.join(dir, 'model.json'), 'missing'));
  });

  test('corrupt model.json', async () => {
    fs.writeFileSync(path.join(dir, 'model.json'), '{"modelTopology": ');
    await expect(loadModel(dir)).rejects.toThrow(/model.json: not valid JSON/);
  });

  test('truncated weights', async () => {
    const w = path.join(dir, 'weights.bin');
    fs.writeFileSync(w, fs.readFileSync(w).subarray(0, 1000));
    await expect(loadModel(dir)).rejects.toThrow(/weights.bin: holds 1000 bytes; model.json declares \d+/);
  });

  test('metadata naming a layer the model lacks', async () => {
    const md = JSON.parse(fs.readFileSync(path.join(dir, 'metadata.json'), 'utf8'));
    md.activationLayers = ['conv1', 'conv9'];
    fs.writeFileSync(path.join(dir, 'metadata.json'), JSON.stringify(md));
    await expect(loadModel(dir)).rejects.toThrow(/metadata.json: names layer 'conv9'/);
  });

  test('the hash changes with the weights', async () => {
    const a = await loadModel(dir);
    const w = path.join(dir, 'weights.bin');
    const bytes = fs.readFileSync(w);
    bytes[100] ^= 1;
    fs.writeFileSync(w, bytes);
    const b = await loadModel(dir);
    expect(b.sha256).not.toBe(a.sha256);
    a.model.dispose();
    b.model.dispose();
  });
});
