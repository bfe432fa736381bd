/**
 * The real third-party model (src/models/nsfwMobileNetV2.ts): extracted from the installed nsfwjs
 * 4.4.0, it passes the service's model checks, loads as an InferenceModel with its softmax Dense's
 * logits split off, gives the probabilities nsfwjs' own loader gives on the same input, and has an
 * input gradient on wasm.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend } from '../../src/engine/backends';
import { InferenceModel } from '../../src/engine/model';
import { storedModelFlops, tokensPerImageOf } from '../../src/engine/modelCost';
import { checkModelFiles } from '../../src/engine/modelStore';
import {
  extractNsfwMobileNetV2,
  NSFW_ACTIVATION_LAYERS,
  NSFW_LABELS,
  nsfwjsPackageDir,
} from '../../src/models/nsfwMobileNetV2';

let dir: string;
let model: InferenceModel;

beforeAll(async () => {
  await initBackend('wasm');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-nsfw-'));
  extractNsfwMobileNetV2(dir);
  model = await InferenceModel.load(dir);
}, 60_000);
afterAll(() => {
  model?.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the directory passes the checks the service runs at start, with uint8-quantised weights kept', () => {
  const { metadata, sha256 } = checkModelFiles(dir);
  expect(metadata.labels).toEqual([...NSFW_LABELS]);
  expect(metadata.inputShape).toEqual([224, 224, 3]);
  expect(sha256).toMatch(/^[0-9a-f]{64}$/);
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const weights = json.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights);
  expect(weights).toHaveLength(266);
  expect(weights.every((w: { quantization?: { dtype: string } }) => w.quantization?.dtype === 'uint8')).toBe(true);
  expect(fs.statSync(path.join(dir, 'group1-shard1of1.bin')).size).toBe(2_619_461);
});

test("one forward pass: probabilities equal to nsfwjs' own model's, logits whose softmax they are, every activation layer", async () => {
  const pixels = new Float32Array(2 * 224 * 224 * 3).map((_, i) => ((i * 7919) % 255) / 255);
  const out = await model.runBatch(pixels, 2);
  expect(out.probs).toHaveLength(2 * 5);
  // nsfwjs' loader (its IOHandler over the same modules) and its own model, on the same input.
  const nsfwjs = require(nsfwjsPackageDir()) as { load(name: string, o: object): Promise<{ model: tf.LayersModel }> };
  const { MobileNetV2Model } = require(path.join(nsfwjsPackageDir(), 'dist', 'cjs', 'models', 'mobilenet_v2.js')) as {
    MobileNetV2Model: unknown;
  };
  const reference = await nsfwjs.load('MobileNetV2', { modelDefinitions: [MobileNetV2Model] });
  const theirs = tf.tidy(() => (reference.model.predict(tf.tensor4d(pixels, [2, 224, 224, 3])) as tf.Tensor).dataSync());
  reference.model.dispose();
  theirs.forEach((p, i) => expect(out.probs[i]).toBeCloseTo(p, 5));
  for (let n = 0; n < 2; n++) {
    const logits = out.logits.subarray(n * 5, (n + 1) * 5);
    const soft = tf.tidy(() => tf.softmax(tf.tensor1d(logits)).dataSync());
    soft.forEach((p, i) => expect(p).toBeCloseTo(out.probs[n * 5 + i], 5));
  }
  // Block outputs pooled per channel (mean and std), the dense layers whole, the logits under dense_3.
  const widths = Object.fromEntries(Object.entries(out.activations).map(([k, v]) => [k, v.width]));
  expect(widths).toEqual({ block_2_add: 48, block_5_add: 64, block_12_add: 192, flatten_1: 1280, dense_2: 128, dense_3: 5 });
  expect(Object.keys(widths)).toEqual(NSFW_ACTIVATION_LAYERS);
  expect(Array.from(out.activations.dense_3.values)).toEqual(Array.from(out.logits));
}, 60_000);

test('its input gradient runs on wasm (DepthwiseConv2dNativeBackpropInput, which tfjs-wasm lacks, is ours)', () => {
  const x = tf.tidy(() => tf.randomUniform([1, 224, 224, 3], 0, 1, 'float32', 3)) as tf.Tensor4D;
  const g = model.inputGradient(x, Int32Array.of(2));
  const values = g.dataSync();
  expect(g.shape).toEqual([1, 224, 224, 3]);
  expect(values.every(Number.isFinite)).toBe(true);
  expect(values.some((v) => v !== 0)).toBe(true);
  tf.dispose([x, g]);
}, 60_000);

test('its forward pass is the published ~300 M multiply-adds: 72 rate-limit tokens an image', () => {
  const flops = storedModelFlops(model.stored);
  expect(flops).toBeGreaterThan(580e6);
  expect(flops).toBeLessThan(650e6);
  expect(tokensPerImageOf(flops)).toBe(72);
});
