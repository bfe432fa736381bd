/**
 * Grad-CAM with known answers: a network built so that class "bright" is the mean of relu(x) and
 * class "dark" the mean of relu(1 − x) (1×1 convolution, global average pooling, identity dense):
 * its Grad-CAM is CAM, so the map of "bright" is the image itself and that of "dark" its negative,
 * each scaled to a maximum of 1. A cut across a skip connection is refused, naming the layers; a
 * graph model is cut by feeding the node, with the maps Grad-CAM written out in tfjs ops gives.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend } from '../../src/engine/backends';
import { InferenceModel } from '../../src/engine/model';
import { saveModel } from '../../src/engine/modelStore';
import { importModel } from '../../src/models/import';
import { GRAPH_WEIGHTS, writeGraphModel } from '../helpers/importModels';

let dir: string;

beforeAll(async () => {
  await initBackend('wasm');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-gradcam-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function knownModel(): Promise<InferenceModel> {
  const input = tf.input({ shape: [8, 8, 1] });
  const feat = tf.layers
    .conv2d({
      filters: 2,
      kernelSize: 1,
      activation: 'relu',
      name: 'feat',
      weights: [tf.tensor4d([1, -1], [1, 1, 1, 2]), tf.tensor1d([0, 1])],
    })
    .apply(input) as tf.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(feat) as tf.SymbolicTensor;
  const logits = tf.layers
    .dense({ units: 2, useBias: false, name: 'logits', weights: [tf.tensor2d([1, 0, 0, 1], [2, 2])] })
    .apply(pooled) as tf.SymbolicTensor;
  const probs = tf.layers.softmax({ name: 'probs' }).apply(logits) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: probs });
  const target = path.join(dir, 'known');
  await saveModel(model, target, {
    id: 'known',
    labels: ['bright', 'dark'],
    inputShape: [8, 8, 1],
    outputLayer: 'probs',
    logitsLayer: 'logits',
    activationLayers: ['feat', 'logits'],
  });
  return InferenceModel.load(target);
}

test('on a network whose answer is known by construction, the maps are the image and its negative', async () => {
  const model = await knownModel();
  expect(model.camLayer).toBe('feat');
  // A bright 3×3 block at the top left on a grey 0.2 background.
  const image = Float32Array.from({ length: 64 }, (_, i) => (i % 8 < 3 && i < 24 ? 1 : 0.2));
  const pixels = new Float32Array(128);
  pixels.set(image, 0);
  pixels.set(image, 64);
  const { layer, height, width, maps } = await model.explain(pixels, 2, Int32Array.of(0, 1));
  expect([layer, height, width]).toEqual(['feat', 8, 8]);
  for (let i = 0; i < 64; i++) {
    expect(maps[i]).toBeCloseTo(image[i], 5); // "bright": relu(x), max 1
    expect(maps[64 + i]).toBeCloseTo((1 - image[i]) / 0.8, 5); // "dark": relu(1 − x), max 0.8
  }
  model.dispose();
});

test('a cut that a later layer also bypasses (a skip connection across it) is refused, naming both', async () => {
  const input = tf.input({ shape: [4, 4, 1] });
  const a = tf.layers.conv2d({ filters: 1, kernelSize: 1, name: 'a' }).apply(input) as tf.SymbolicTensor;
  const b = tf.layers.conv2d({ filters: 1, kernelSize: 1, name: 'b' }).apply(a) as tf.SymbolicTensor;
  const sum = tf.layers.add({ name: 'sum' }).apply([a, b]) as tf.SymbolicTensor;
  const flat = tf.layers.flatten({ name: 'flat' }).apply(sum) as tf.SymbolicTensor;
  const logits = tf.layers.dense({ units: 2, name: 'logits' }).apply(flat) as tf.SymbolicTensor;
  const target = path.join(dir, 'skip');
  await saveModel(tf.model({ inputs: input, outputs: logits }), target, {
    id: 'skip',
    labels: ['x', 'y'],
    inputShape: [4, 4, 1],
    logitsLayer: 'logits',
    activationLayers: ['b', 'sum', 'logits'],
  });
  const model = await InferenceModel.load(target);
  expect(model.camLayer).toBe('sum');
  await expect(model.explain(new Float32Array(16), 1, Int32Array.of(0), 'b')).rejects.toThrow(
    /layer 'sum' reads 'a' as well as what follows 'b'/,
  );
  const ok = await model.explain(new Float32Array(16).fill(0.5), 1, Int32Array.of(1), 'sum');
  expect(ok.maps).toHaveLength(16);
  model.dispose();
});

test('a graph model, fed at the cut node: the same maps as Grad-CAM written out in tfjs ops on its weights', async () => {
  const src = path.join(dir, 'graph-src');
  writeGraphModel(src);
  const { dir: imported } = await importModel({ sourceDir: src, id: 'graph', modelsDir: dir, maxMemoryBytes: 2 ** 30 });
  const model = await InferenceModel.load(imported, ['block/add', 'logits']);
  const pixels = Float32Array.from({ length: 2 * 8 * 8 * 3 }, (_, i) => (Math.sin(i * 0.37) + 1) / 2);
  const classes = Int32Array.of(0, 2);
  const got = await model.explain(pixels.slice(), 2, classes, 'block/add');
  expect([got.height, got.width]).toEqual([4, 4]);
  const expected = tf.tidy(() => {
    const w = (n: string) => tf.tensor(GRAPH_WEIGHTS[n].values, GRAPH_WEIGHTS[n].shape);
    const convRelu = (t: tf.Tensor4D, n: string, s: number) =>
      tf.relu(tf.add(tf.conv2d(t, w(`${n}/w`) as tf.Tensor4D, s, 'same'), w(`${n}/b`))) as tf.Tensor4D;
    const c2 = convRelu(convRelu(tf.tensor4d(pixels, [2, 8, 8, 3]), 'conv1', 1), 'conv2', 2);
    const a = tf.add(c2, convRelu(c2, 'conv3', 1)) as tf.Tensor4D;
    // d logit_k / d a = the dense weights' column k, reshaped to the activation.
    const dense = w('dense/w') as tf.Tensor2D;
    const grads = tf.stack([0, 1].map((i) => tf.reshape(tf.slice(dense, [0, classes[i]], [64, 1]), [4, 4, 4])));
    const cam = tf.relu(tf.sum(tf.mul(a, tf.mean(grads, [1, 2], true)), 3));
    return tf.div(cam, tf.maximum(tf.max(cam, [1, 2], true), 1e-12));
  });
  const want = await expected.data();
  got.maps.forEach((v, i) => expect(v).toBeCloseTo(want[i], 4));
  expected.dispose();
  model.dispose();
});
