/**
 * Adversarial training: the inner attack stays in the ε-ball and the image box and raises the
 * loss it attacks; a few adversarial training steps lower the (adversarial) training loss; the
 * accuracy-under-PGD figure the model card records is computed from the attack, not assumed.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { crossEntropy } from '../../src/attacks/pgd';
import { DEFAULT_FASHION_MNIST_DIR, ImageSet, loadFashionMnist } from '../../src/data/fashionMnist';
import { initBackend } from '../../src/engine/backends';
import { adversarialBatch, adversarialSchedule, perturbationStore } from '../../src/train/adversarialTraining';
import { buildTrainingModel } from '../../src/train/fashionCnn';
import { TrainingReplica } from '../../src/train/replica';
import { robustAccuracy } from '../../src/train/robustAccuracy';
import { train, TrainOptions } from '../../src/train/trainer';
import { advsieve, quickTrainArgs } from '../helpers/cli';

const DATA = process.env.FASHION_MNIST_DIR ?? DEFAULT_FASHION_MNIST_DIR;
const SMALL = { conv1Filters: 4, conv2Filters: 4, hiddenUnits: 8, dropout: 0 };

beforeAll(async () => {
  await initBackend('wasm');
});

test('the schedule: FGSM-RS takes one step of 1.25ε, PGD 7 of 2.5ε/7; bad settings are refused', () => {
  expect(adversarialSchedule({ method: 'fgsm-rs', epsilon: 0.1 })).toEqual({ steps: 1, stepSize: 0.125 });
  const pgd = adversarialSchedule({ method: 'pgd', epsilon: 0.1 });
  expect(pgd.steps).toBe(7);
  expect(pgd.stepSize).toBeCloseTo(0.25 / 7, 10);
  expect(adversarialSchedule({ method: 'pgd', epsilon: 0.2, steps: 3, stepSize: 0.05 })).toEqual({
    steps: 3,
    stepSize: 0.05,
  });
  expect(() => adversarialSchedule({ method: 'fgsm-rs', epsilon: 0 })).toThrow(/epsilon/);
  expect(() => adversarialSchedule({ method: 'fgsm-rs', epsilon: 1.5 })).toThrow(/epsilon/);
  expect(() => adversarialSchedule({ method: 'pgd', epsilon: 0.1, steps: 0 })).toThrow(/steps/);
  expect(() => adversarialSchedule({ method: 'bim' as never, epsilon: 0.1 })).toThrow(/fgsm-rs, pgd, atta/);
  // ATTA: one step of ε/2 a visit unless told otherwise.
  expect(adversarialSchedule({ method: 'atta', epsilon: 0.1 })).toEqual({ steps: 1, stepSize: 0.05 });
  expect(adversarialSchedule({ method: 'atta', epsilon: 0.1, steps: 2, stepSize: 0.02 })).toEqual({
    steps: 2,
    stepSize: 0.02,
  });
});

test('the perturbation store starts every image uniformly in the ε-ball, from its seed', () => {
  const a = new Float32Array(perturbationStore(50, 784, 0.1, 3));
  const b = new Float32Array(perturbationStore(50, 784, 0.1, 3));
  const c = new Float32Array(perturbationStore(50, 784, 0.1, 4));
  expect(a.length).toBe(50 * 784);
  expect(Array.from(b)).toEqual(Array.from(a));
  expect(Array.from(c)).not.toEqual(Array.from(a));
  expect(Math.max(...a)).toBeLessThanOrEqual(0.1);
  expect(Math.min(...a)).toBeGreaterThanOrEqual(-0.1);
  // Uniform on [−ε, ε): mean |δ| ≈ ε/2.
  expect(a.reduce((s, v) => s + Math.abs(v), 0) / a.length).toBeCloseTo(0.05, 2);
});

describe('the inner attack', () => {
  const set = () => loadFashionMnist('test', DATA, 32);
  const model = buildTrainingModel({ ...SMALL, seed: 4 });
  const logitsOf = (x: tf.Tensor4D) => model.apply(x, { training: true }) as tf.Tensor2D;
  afterAll(() => model.dispose());

  test.each(['fgsm-rs', 'pgd'] as const)('%s stays within ε of the image and inside [0, 1], and moves it', (method) => {
    const s = set();
    const x = tf.tensor4d(s.pixels, [s.count, 28, 28, 1]);
    const target = tf.oneHot(tf.tensor1d(s.labels, 'int32'), 10) as tf.Tensor2D;
    const eps = 0.1;
    const adv = adversarialBatch(logitsOf, x, target, { method, epsilon: eps }, 11);
    const diff = tf.sub(adv, x);
    expect(tf.max(tf.abs(diff)).dataSync()[0]).toBeLessThanOrEqual(eps + 1e-6);
    expect(tf.min(adv).dataSync()[0]).toBeGreaterThanOrEqual(0);
    expect(tf.max(adv).dataSync()[0]).toBeLessThanOrEqual(1);
    // Most pixels end on the ball's surface or the box's edge: the step is a sign step of ≥ ε.
    expect(tf.mean(tf.abs(diff)).dataSync()[0]).toBeGreaterThan(0.3 * eps);
    tf.dispose([x, target, adv, diff]);
  });

  test('from a given start: the attack continues from x + start (projected), not from a random point', () => {
    const s = set();
    const x = tf.tensor4d(s.pixels, [s.count, 28, 28, 1]);
    const target = tf.oneHot(tf.tensor1d(s.labels, 'int32'), 10) as tf.Tensor2D;
    const eps = 0.1;
    // A start far outside the ball is projected onto it first: every pixel starts at +ε (or the box).
    const start = new Float32Array(x.size).fill(0.5);
    const step = 0.01;
    const adv = adversarialBatch(logitsOf, x, target, { method: 'atta', epsilon: eps, stepSize: step }, 1, start);
    const xs = x.dataSync();
    const a = adv.dataSync();
    // One sign step of 0.01 from min(1, x + ε), projected back on the ball and the box: within a
    // step of the start everywhere (a random start would put pixels up to 2ε away).
    let far = 0;
    for (let i = 0; i < xs.length; i++) far = Math.max(far, Math.abs(a[i] - Math.min(1, xs[i] + eps)));
    expect(far).toBeLessThanOrEqual(step + 1e-6);
    expect(far).toBeGreaterThan(step / 2);
    // Seeds do not matter when the start is given.
    const again = adversarialBatch(logitsOf, x, target, { method: 'atta', epsilon: eps, stepSize: step }, 99, start);
    expect(Array.from(again.dataSync())).toEqual(Array.from(a));
    expect(() =>
      adversarialBatch(logitsOf, x, target, { method: 'atta', epsilon: eps }, 1, new Float32Array(3)),
    ).toThrow(/expected 25088 values/);
    tf.dispose([x, target, adv, again]);
  });

  test('PGD raises the loss it attacks above the clean loss, and is reproducible from its seed', () => {
    const s = set();
    const x = tf.tensor4d(s.pixels, [s.count, 28, 28, 1]);
    const target = tf.oneHot(tf.tensor1d(s.labels, 'int32'), 10) as tf.Tensor2D;
    const loss = (images: tf.Tensor4D) => tf.tidy(() => tf.mean(crossEntropy(logitsOf(images), target)).dataSync()[0]);
    const a = adversarialBatch(logitsOf, x, target, { method: 'pgd', epsilon: 0.1, steps: 5 }, 3);
    const b = adversarialBatch(logitsOf, x, target, { method: 'pgd', epsilon: 0.1, steps: 5 }, 3);
    expect(loss(a)).toBeGreaterThan(loss(x));
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    tf.dispose([x, target, a, b]);
  });
});

/** Adversarial training of the tiny CNN on the first 640 training images, with `extra` options. */
const trainSmall = (extra: Partial<TrainOptions>) =>
  train({
    dataDir: DATA,
    epochs: 3,
    batchSize: 32,
    learningRate: 3e-3,
    lrDecay: 1,
    seed: 7,
    workers: 1,
    limit: 640,
    model: SMALL,
    ...extra,
  });

test.each(['fgsm-rs', 'atta'] as const)(
  'a few %s training steps lower the training loss, in process and over 2 worker threads (ATTA: the store shared)',
  async (method) => {
    for (const workers of [1, 2]) {
      const result = await trainSmall({ workers, adversarial: { method, epsilon: 0.1 } });
      expect(result.history).toHaveLength(3);
      expect(result.history[2].loss).toBeLessThan(result.history[0].loss * 0.9);
      result.model.dispose();
    }
  },
);

test('ATTA with augmentation is refused before training', async () => {
  await expect(
    trainSmall({ epochs: 1, augment: { flip: true, maxShift: 2 }, adversarial: { method: 'atta', epsilon: 0.1 } }),
  ).rejects.toThrow(/augmentation/);
});

test("ATTA: a step writes its images' perturbations back to the store (in the ε-ball), and leaves the others", async () => {
  const data = loadFashionMnist('train', DATA, 64);
  const eps = 0.1;
  const buffer = perturbationStore(data.count, 784, eps, 5);
  const store = new Float32Array(buffer);
  const before = store.slice();
  const replica = new TrainingReplica(
    data,
    { model: { ...SMALL, seed: 3 }, learningRate: 1e-3, adversarial: { method: 'atta', epsilon: eps } },
    buffer,
  );
  const touched = [3, 10, 11, 40];
  await replica.computeGradients(Uint32Array.from(touched), 1);
  for (let img = 0; img < data.count; img++) {
    const now = store.subarray(img * 784, (img + 1) * 784);
    const was = before.subarray(img * 784, (img + 1) * 784);
    if (!touched.includes(img)) {
      expect(Array.from(now)).toEqual(Array.from(was));
      continue;
    }
    let moved = 0;
    for (let p = 0; p < 784; p++) {
      expect(Math.abs(now[p])).toBeLessThanOrEqual(eps + 1e-6);
      const x = data.pixels[img * 784 + p];
      expect(x + now[p]).toBeGreaterThanOrEqual(-1e-6);
      expect(x + now[p]).toBeLessThanOrEqual(1 + 1e-6);
      if (Math.abs(now[p] - was[p]) > 1e-6) moved++;
    }
    // One step of ε/2 moves most pixels (not those held at the ball's edge or the box).
    expect(moved).toBeGreaterThan(392);
  }
  replica.dispose();
});

test('train() takes its images from TrainOptions.data when given (worker replicas get a copy)', async () => {
  // Two classes a linear model separates at once: dark and bright images.
  const count = 256;
  const pixels = new Float32Array(count * 784);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    labels[i] = i % 2;
    pixels.fill(labels[i] ? 0.8 : 0.2, i * 784, (i + 1) * 784);
  }
  const data: ImageSet = { count, height: 28, width: 28, pixels, labels };
  const result = await train({
    dataDir: '/nonexistent',
    epochs: 2,
    batchSize: 32,
    learningRate: 3e-3,
    lrDecay: 1,
    seed: 1,
    workers: 2,
    data,
    model: SMALL,
  });
  expect(result.trainImages).toBe(count);
  expect(result.history[1].trainAccuracy).toBeGreaterThan(0.9);
  result.model.dispose();
});

test('accuracy under PGD is measured: at most the clean accuracy, and equal to it at a vanishing ε', async () => {
  const result = await train({
    dataDir: DATA,
    epochs: 2,
    batchSize: 32,
    learningRate: 3e-3,
    lrDecay: 1,
    seed: 2,
    workers: 1,
    limit: 640,
    model: SMALL,
  });
  const test = loadFashionMnist('test', DATA, 64);
  const strong = await robustAccuracy(result.model, test, { count: 64, epsilon: 0.1, steps: 10 });
  const tiny = await robustAccuracy(result.model, test, { count: 64, epsilon: 1e-6, steps: 2 });
  expect(strong.images).toBe(64);
  expect(strong.clean).toBeGreaterThan(0.3);
  expect(strong.underAttack).toBeLessThan(strong.clean);
  expect(tiny.underAttack).toBeCloseTo(tiny.clean, 5);
  expect(strong.chunks).toHaveLength(1);
  expect(strong.underAttackInterval.low).toBeLessThanOrEqual(strong.underAttack);
  expect(strong.underAttackInterval.high).toBeGreaterThanOrEqual(strong.underAttack);

  // 1 000 at a time on the real test set; here 64 in chunks of 24: 24 + 24 + 16, the whole figure
  // their image-weighted mean, and the first chunk attacked exactly as a run on those 24 alone.
  const chunked = await robustAccuracy(result.model, test, { count: 64, epsilon: 0.1, steps: 10, chunk: 24 });
  expect(chunked.chunks.map((c) => [c.from, c.images])).toEqual([
    [0, 24],
    [24, 24],
    [48, 16],
  ]);
  const mean = chunked.chunks.reduce((s, c) => s + c.underAttack * c.images, 0) / 64;
  expect(chunked.underAttack).toBeCloseTo(mean, 10);
  expect(chunked.clean).toBeCloseTo(strong.clean, 10);
  const first = await robustAccuracy(result.model, test, { count: 24, epsilon: 0.1, steps: 10 });
  expect(chunked.chunks[0].underAttack).toBe(first.underAttack);
  result.model.dispose();
});

test('`advsieve train --adversarial` with the widths, swish and a check at another ε than training’s: the metadata and card record them', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-adv-cli-'));
  try {
    const r = await advsieve(
      ...quickTrainArgs(DATA, out),
      '--conv1-filters',
      '4',
      '--conv2-filters',
      '4',
      '--hidden-units',
      '16',
      '--activation',
      'swish',
      '--dropout',
      '0',
      '--adversarial',
      'fgsm-rs',
      '--epsilon',
      '0.12',
      '--robust-epsilon',
      '0.05',
      '--robust-images',
      '32',
    );
    expect(r.code).toBe(0);
    const md = JSON.parse(fs.readFileSync(path.join(out, 'metadata.json'), 'utf8'));
    expect(md.training.adversarial).toEqual({ method: 'fgsm-rs', epsilon: 0.12 });
    expect(md.training.widths).toEqual({ conv1: 4, conv2: 4, hidden: 16 });
    expect(md.training.activation).toBe('swish');
    // The served graph is what `serve` loads: its hidden layers carry the activation trained.
    const topology = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8')).modelTopology;
    const layers = topology.config.layers as { config: { name: string; activation?: string } }[];
    expect(
      layers.filter((l) => ['conv1', 'conv2', 'fc1'].includes(l.config.name)).map((l) => l.config.activation),
    ).toEqual(['swish', 'swish', 'swish']);
    expect(md.training.robust).toMatchObject({ images: 32, epsilon: 0.05, steps: 40 });
    expect(md.training.robust.underAttack).toBeLessThanOrEqual(md.training.robust.clean);
    const card = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
    expect(card).toMatch(/\| conv1 \| 28×28×4 \| 3×3, same padding, swish/);
    expect(card).toMatch(/\| fc1 \| 16 \|/);
    expect(card).toMatch(/L∞ ε = 0\.12, made against the model/);
    expect(card).toMatch(/Accuracy under PGD-40\*\* \(L∞ ε = 0\.05,/);
    expect(r.stdout).toMatch(/under PGD-40 ε 0\.05: [\d.]+ % of the first 32/);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
