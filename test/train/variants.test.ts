/**
 * The causes-study variants of `train` (docs/variants.md) end to end on a small subset of
 * Fashion-MNIST: each learns in a few steps, writes a model directory that modelStore checks and
 * loads, serves probabilities of its own kind, and gives finite, nonzero input gradients (what the
 * attacks take). One variant goes through the engine's worker threads and the screener, and one
 * through the `advsieve train` and `classify` commands.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DEFAULT_FASHION_MNIST_DIR, loadFashionMnist } from '../../src/data/fashionMnist';
import { initBackend } from '../../src/engine/backends';
import { Engine } from '../../src/engine/engine';
import { noneProbabilityOf } from '../../src/engine/layers/pnnHead';
import { InferenceModel } from '../../src/engine/model';
import { checkModelFiles, saveModel } from '../../src/engine/modelStore';
import { Screener } from '../../src/screening/screener';
import { LossKind } from '../../src/train/losses';
import { ModelVariantOptions, resolveVariant } from '../../src/train/modelVariant';
import { noneShare } from '../../src/train/pnnBackground';
import { trainedModelMetadata } from '../../src/train/trainedMetadata';
import { accuracy, train, TrainResult } from '../../src/train/trainer';
import { smallCalibration } from '../helpers/calibration';
import { advsieve, quickTrainArgs } from '../helpers/cli';
import { fixtureLabels, fixturePixels } from '../helpers/fixtures';

const DATA = process.env.FASHION_MNIST_DIR ?? DEFAULT_FASHION_MNIST_DIR;
const TINY = { mlpUnits: 32, hiddenUnits: 16, conv1Filters: 4, conv2Filters: 4, dropout: 0 };

let tmp: string;
beforeAll(async () => {
  await initBackend('wasm');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-variants-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function trainTiny(
  model: ModelVariantOptions,
  loss: LossKind,
  extra: { epochs?: number; limit?: number; workers?: number } = {},
) {
  return train({
    dataDir: DATA,
    epochs: extra.epochs ?? 3,
    batchSize: 32,
    learningRate: 3e-3,
    lrDecay: 1,
    seed: 4,
    workers: extra.workers ?? 1,
    limit: extra.limit ?? 256,
    model: { ...TINY, ...model },
    loss,
  });
}

async function saved(result: TrainResult, name: string): Promise<string> {
  const dir = path.join(tmp, name);
  await saveModel(result.model, dir, trainedModelMetadata(name, result));
  checkModelFiles(dir); // what `serve` checks before any worker loads it
  return dir;
}

const VARIANTS: Array<[string, ModelVariantOptions, LossKind]> = [
  ['cnn, L2 both', { arch: 'cnn', l2norm: 'both', l2Scale: 10 }, 'softmax'],
  ['mlp', { arch: 'mlp' }, 'softmax'],
  ['mlp, one-vs-rest', { arch: 'mlp' }, 'ovr'],
  ['mlp, L2 features', { arch: 'mlp', l2norm: 'features', l2Scale: 10 }, 'softmax'],
  ['mlp, L2 weights', { arch: 'mlp', l2norm: 'weights', l2Scale: 10 }, 'softmax'],
  ['mlp, L2 both, one-vs-rest', { arch: 'mlp', l2norm: 'both', l2Scale: 10 }, 'ovr'],
  ['mlp, PNN', { arch: 'mlp', head: 'pnn', prototypesPerClass: 2 }, 'softmax'],
  ['cnn, PNN on L2 features', { arch: 'cnn', head: 'pnn', l2norm: 'features', prototypesPerClass: 2 }, 'softmax'],
];

test.each(VARIANTS)(
  '%s: the loss falls in 24 steps; the saved model loads with its probabilities and input gradients',
  async (name, variant, loss) => {
    const result = await trainTiny(variant, loss);
    expect(result.history).toHaveLength(3);
    expect(result.history[2].loss).toBeLessThan(result.history[0].loss);
    const dir = await saved(result, name.replace(/[^a-z]+/g, '-'));
    const model = await InferenceModel.load(dir);
    const md = model.metadata;
    const v = resolveVariant(variant);
    expect(md.activationLayers).toEqual(
      v.arch === 'mlp' ? ['fc1', 'fc2', 'logits'] : ['conv1', 'conv2', 'fc1', 'logits'],
    );
    expect(md.variant).toMatchObject({ arch: v.arch, l2norm: v.l2norm, head: v.head, loss });
    expect(md.probabilities).toBe(loss === 'ovr' ? 'sigmoid' : 'softmax');

    const set = loadFashionMnist('test', DATA, 8);
    const out = await model.runBatch(set.pixels, 8);
    const x = tf.tensor4d(set.pixels, [8, 28, 28, 1]);
    const served = (result.model.predict(x) as tf.Tensor).dataSync();
    Array.from(out.probs).forEach((p, i) => expect(p).toBeCloseTo(served[i], 5));
    // Every probability the engine compares is of one kind: the low-pass pass's too.
    const again = model.probabilities(x).dataSync();
    Array.from(out.probs).forEach((p, i) => expect(p).toBeCloseTo(again[i], 5));
    const rowSums = Array.from({ length: 8 }, (_, i) =>
      out.probs.subarray(i * 10, (i + 1) * 10).reduce((a, b) => a + b, 0),
    );
    if (loss === 'softmax') rowSums.forEach((s) => expect(s).toBeCloseTo(1, 4));
    else {
      out.probs.forEach((p, i) => expect(p).toBeCloseTo(1 / (1 + Math.exp(-out.logits[i])), 5));
      expect(rowSums.some((s) => Math.abs(s - 1) > 0.05)).toBe(true); // no one-sum constraint
    }
    if (v.l2norm === 'both') out.logits.forEach((z) => expect(Math.abs(z)).toBeLessThanOrEqual(10 + 1e-3));
    if (v.head === 'pnn') {
      const pnn = md.variant!.pnn!;
      expect(Number.isFinite(pnn.logBackground)).toBe(true);
      expect(pnn.backgroundQuantile).toBe(0.01);
      // Set on these very training images: about 1 % of them are "none".
      const trainSet = loadFashionMnist('train', DATA, 256);
      const trainOut = await model.runBatch(trainSet.pixels, 256);
      const none = Array.from({ length: 256 }, (_, i) =>
        noneProbabilityOf(trainOut.logits.subarray(i * 10, (i + 1) * 10), pnn.logBackground),
      );
      expect(none.filter((p) => p >= 0.5).length).toBeLessThanOrEqual(4);
      // The trainer's own count (what `train` prints for the test images) agrees with the engine's
      // logits, but for the image at the threshold itself (its density is b, up to rounding).
      const share = none.filter((p) => p >= 0.5).length / 256;
      expect(Math.abs((await noneShare(result.model, trainSet)) - share)).toBeLessThanOrEqual(1 / 256 + 1e-9);
    }

    const grad = model.inputGradient(x, Int32Array.from(set.labels)).dataSync();
    expect(grad.every(Number.isFinite)).toBe(true);
    expect(Math.max(...grad.map(Math.abs))).toBeGreaterThan(0);
    // The detectors' differentiable path (adaptive attacks) runs through the custom layers too.
    const g2 = tf
      .grad((xi: tf.Tensor) => tf.sum(model.forwardDifferentiable(xi as tf.Tensor4D).activations.logits))(x)
      .dataSync();
    expect(g2.every(Number.isFinite) && g2.some((g) => g !== 0)).toBe(true);
    tf.dispose(x);
    model.dispose();
    result.model.dispose();
  },
);

test('given images of another size and class count (a reference dataset), the variant follows them', async () => {
  // Three classes of 12×12 images: a bright square in one of three places, on faint noise.
  const count = 96;
  const size = 144;
  const pixels = new Float32Array(count * size);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    labels[i] = i % 3;
    for (let p = 0; p < size; p++) pixels[i * size + p] = ((i * 7919 + p * 104729) % 97) / 970;
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) pixels[i * size + (y + 4) * 12 + x + labels[i] * 4] = 1;
  }
  const result = await train({
    dataDir: DATA,
    data: { count, height: 12, width: 12, pixels, labels },
    epochs: 6,
    batchSize: 16,
    learningRate: 3e-3,
    lrDecay: 1,
    seed: 2,
    workers: 1,
    model: { ...TINY, arch: 'mlp', head: 'pnn', prototypesPerClass: 1, classes: 3 },
  });
  expect(result.history[5].loss).toBeLessThan(result.history[0].loss);
  const set = { count, height: 12, width: 12, pixels, labels };
  expect(await accuracy(result.model, set)).toBeGreaterThan(0.8);
  const md = trainedModelMetadata('squares', result);
  expect(md.inputShape).toEqual([12, 12, 1]);
  expect(md.labels).toEqual(['class 0', 'class 1', 'class 2']);
  expect(() => trainedModelMetadata('squares', result, { labels: ['a', 'b'] })).toThrow(
    /2 labels for a model of 3 classes/,
  );
  const dir = path.join(tmp, 'squares');
  await saveModel(result.model, dir, md);
  checkModelFiles(dir);
  const model = await InferenceModel.load(dir);
  const out = await model.runBatch(pixels.slice(0, 3 * size), 3);
  expect(Array.from({ length: 3 }, (_, i) => argmaxOf(out.probs.subarray(i * 3, i * 3 + 3)))).toEqual([0, 1, 2]);
  model.dispose();
  result.model.dispose();
});

const argmaxOf = (a: Float32Array) => a.indexOf(Math.max(...a));

test('bad variants are refused before training, naming the field', async () => {
  await expect(trainTiny({ head: 'pnn', l2norm: 'both' }, 'softmax')).rejects.toThrow(/l2norm 'both'/);
  await expect(trainTiny({ arch: 'rnn' as 'mlp' }, 'softmax')).rejects.toThrow(/arch/);
  await expect(trainTiny({ arch: 'mlp' }, 'hinge' as LossKind)).rejects.toThrow(/loss/);
  await expect(trainTiny({ l2Scale: -1, l2norm: 'both' }, 'softmax')).rejects.toThrow(/l2Scale/);
  await expect(trainTiny({ arch: 'mlp', head: 'pnn' }, 'ovr')).rejects.toThrow(/'ovr' with head 'pnn'/);
  await expect(
    train({
      dataDir: DATA,
      epochs: 1,
      batchSize: 8,
      learningRate: 1e-3,
      lrDecay: 1,
      seed: 1,
      workers: 1,
      limit: 16,
      model: { head: 'pnn' },
      pnnBackgroundQuantile: 1.5,
    }),
  ).rejects.toThrow(/background quantile/);
});

test('a PNN MLP trained over 2 worker threads screens through the engine and the screener', async () => {
  const result = await trainTiny({ arch: 'mlp', head: 'pnn', prototypesPerClass: 2 }, 'softmax', {
    epochs: 2,
    limit: 1024,
    workers: 2,
  });
  expect(await accuracy(result.model, loadFashionMnist('test', DATA, 300))).toBeGreaterThan(0.4);
  const dir = await saved(result, 'engine-pnn');
  result.model.dispose();
  const local = await InferenceModel.load(dir);
  const calibration = await smallCalibration(local);
  const screener = new Screener(calibration, local.metadata.labels);
  const engine = await Engine.start({ modelDir: dir, backend: 'wasm', workers: 1, extras: screener.extras });
  try {
    const fx = fixtureLabels().slice(0, 6);
    const images = await Promise.all(fx.map((f) => fixturePixels(f.file)));
    const outs = await Promise.all(engine.infer(images));
    const ref = await local.runBatch(Float32Array.from(images.flatMap((img) => Array.from(img))), images.length);
    outs.forEach((o, i) => {
      Array.from(o.probs).forEach((p, k) => expect(p).toBeCloseTo(ref.probs[i * 10 + k], 5));
      expect(o.activations.fc2).toHaveLength(16);
      const s = screener.screen(o);
      expect(s.detection.detectors.every((d) => Number.isFinite(d.score))).toBe(true);
      expect(s.prediction.confidence).toBeCloseTo(Math.max(...o.probs), 6);
    });
  } finally {
    await engine.close();
    local.dispose();
  }
});

test('`advsieve train --arch mlp --head pnn --hidden-units 48` writes a card and metadata that record the variant; `classify` reads the model', async () => {
  const out = path.join(tmp, 'cli-mlp-pnn');
  const r = await advsieve(
    ...quickTrainArgs(DATA, out),
    '--arch',
    'mlp',
    '--head',
    'pnn',
    '--prototypes',
    '2',
    '--hidden-units',
    '48',
  );
  expect(r.code).toBe(0);
  expect(r.stderr).not.toMatch(/error/i);
  const md = JSON.parse(fs.readFileSync(path.join(out, 'metadata.json'), 'utf8'));
  expect(md).toMatchObject({
    probabilities: 'softmax',
    variant: { arch: 'mlp', head: 'pnn', loss: 'softmax', pnn: { prototypesPerClass: 2 } },
    training: { widths: { hidden: 48 } },
  });
  const card = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
  expect(card).toMatch(/PNN: class log-densities, 2 Gaussian kernels per class/);
  expect(card).toMatch(/p\(none \| x\)/);
  expect(card).toMatch(/on the 10000 test images, [\d.]+ % have/);
  expect(r.stdout).toMatch(/p\(none\) ≥ 0.5 on [\d.]+ % of them/);
  expect(card).toMatch(/\| probs \| 10 \| softmax \|/);
  expect(card).toMatch(/\| fc2 \| 48 \| ReLU/);
  const c = await advsieve('classify', '--json', '--model', out, fixtureLabels()[0].file);
  expect(c.code).toBe(0);
  const [row] = JSON.parse(c.stdout);
  expect(row.top[0].score).toBeGreaterThanOrEqual(row.top[1].score);
  const bad = await advsieve('train', '--data', DATA, '--out', out, '--head', 'svm');
  expect(bad.code).not.toBe(0);
  expect(bad.stderr).toMatch(/expected one of dense, pnn, got 'svm'/);
});
