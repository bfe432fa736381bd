/** The FLOP estimate that prices a model's images (src/engine/modelCost.ts), on layers counted by hand. */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { forwardFlops, storedModelFlops, TOKEN_FLOPS, tokensPerImageOf } from '../../src/engine/modelCost';
import { loadModel } from '../../src/engine/modelStore';
import { importModel } from '../../src/models/import';
import { writeGraphModel } from '../helpers/importModels';
import { decodeSmallPlainPng, MAIN_THREAD_MAX_VALUES } from '../../src/images/decode';
import { BUNDLED_MODEL_DIR } from '../helpers/fixtures';
import sharp from 'sharp';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

test('convolutions count 2 × window × input channels per output, depthwise 2 × window, dense 2 × weights, the rest one per output', () => {
  const input = tf.input({ shape: [10, 10, 3] });
  let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same' }).apply(input) as tf.SymbolicTensor; // 10·10·4 outputs
  x = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'valid' }).apply(x) as tf.SymbolicTensor; // 8·8·4
  x = tf.layers.reLU().apply(x) as tf.SymbolicTensor; // 8·8·4
  x = tf.layers.flatten().apply(x) as tf.SymbolicTensor; // 256
  x = tf.layers.dense({ units: 5 }).apply(x) as tf.SymbolicTensor; // 256 × 5 weights
  const model = tf.model({ inputs: input, outputs: x });
  const expected =
    10 * 10 * 3 + // the input layer: one per value
    2 * 400 * 9 * 3 +
    2 * 256 * 9 +
    256 +
    256 +
    2 * 256 * 5;
  expect(forwardFlops(model)).toBe(expected);
  model.dispose();
});

test('a graph model: its convolutions and matrix products priced by filter shape and output size', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-cost-'));
  try {
    writeGraphModel(path.join(root, 'src'));
    const { dir } = await importModel({
      sourceDir: path.join(root, 'src'),
      id: 'tiny-graph',
      modelsDir: root,
      maxMemoryBytes: 2 ** 30,
    });
    const stored = await loadModel(dir);
    // conv1 8·8·4 outputs × 3·3·3; conv2 (stride 2) 4·4·4 × 3·3·4; conv3 4·4·4 × 1·1·4; the dense 3 × 64.
    expect(storedModelFlops(stored)).toBe(2 * (256 * 27 + 64 * 36 + 64 * 4 + 3 * 64));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('one token is the bundled model’s forward pass; a model of 72 times its FLOPs costs 72 an image', async () => {
  const bundled = await loadModel(BUNDLED_MODEL_DIR);
  const flops = storedModelFlops(bundled);
  expect(Math.abs(flops - TOKEN_FLOPS) / TOKEN_FLOPS).toBeLessThan(0.01);
  expect(tokensPerImageOf(flops)).toBe(1);
  expect(tokensPerImageOf(615e6)).toBe(72);
  expect(tokensPerImageOf(0)).toBe(1);
  bundled.model.dispose();
});

test('large model inputs are never decoded on the service’s thread, however small and plain the PNG', async () => {
  const png = (w: number, h: number) =>
    sharp({ create: { width: w, height: h, channels: 3, background: { r: 10, g: 20, b: 30 } } })
      .png()
      .toBuffer();
  expect(decodeSmallPlainPng(await png(32, 32), [32, 32, 3])).toBeDefined();
  expect(64 * 64 * 3).toBe(MAIN_THREAD_MAX_VALUES);
  const big = await png(100, 100); // a few hundred bytes compressed, 30 000 values
  expect(big.length).toBeLessThan(2048);
  expect(decodeSmallPlainPng(big, [100, 100, 3])).toBeUndefined();
});
