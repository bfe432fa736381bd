/**
 * The moving average of the weights (`train --weight-average`): the replica's average follows the
 * stated recurrence exactly, export gives the average or the last step's weights on request, and
 * train() serves the average while handing back the last step's model, in-process and over workers.
 */
import * as tf from '@tensorflow/tfjs';
import { DEFAULT_FASHION_MNIST_DIR, ImageSet } from '../../src/data/fashionMnist';
import { initBackend } from '../../src/engine/backends';
import { checkWeightAverage, TrainingReplica, weightAverageDecay } from '../../src/train/replica';
import { train, TrainOptions } from '../../src/train/trainer';

const DATA = process.env.FASHION_MNIST_DIR ?? DEFAULT_FASHION_MNIST_DIR;

beforeAll(async () => {
  await initBackend('wasm');
});

const tinySet: ImageSet = { count: 1, height: 28, width: 28, pixels: new Float32Array(784), labels: new Uint8Array(1) };
const tinyModel = { conv1Filters: 2, conv2Filters: 2, hiddenUnits: 4, dropout: 0, seed: 9 };

test('the decay warms up as (1 + t)/(10 + t) and is capped by the decay asked for', () => {
  expect(weightAverageDecay(0.999, 1)).toBeCloseTo(2 / 11, 12);
  expect(weightAverageDecay(0.999, 100)).toBeCloseTo(101 / 110, 12);
  expect(weightAverageDecay(0.9, 1000)).toBe(0.9);
  expect(() => checkWeightAverage(1)).toThrow(/\(0, 1\)/);
  expect(() => checkWeightAverage(0)).toThrow(/\(0, 1\)/);
  expect(() => checkWeightAverage(Number.NaN)).toThrow(RangeError);
  expect(() => checkWeightAverage(undefined)).not.toThrow();
});

test("the replica's average follows avg ← d·avg + (1 − d)·w after every step, and export picks average or last", async () => {
  const decay = 0.5;
  const replica = new TrainingReplica(tinySet, { model: tinyModel, learningRate: 0.05, weightAverage: decay });
  const trainable = replica.model.trainableWeights.length;
  const snapshot = async (kind: 'averaged' | 'final') =>
    (await replica.exportWeights(kind)).slice(0, trainable).map((w) => Float64Array.from(w.values));
  let expected = await snapshot('final'); // the average starts at the initial weights
  expect(await snapshot('averaged')).toEqual(expected);
  for (let t = 1; t <= 3; t++) {
    const grads = replica.model.trainableWeights.map((w, k) =>
      Float32Array.from({ length: w.read().size }, (_, i) => Math.sin(1 + i + 7 * k + 13 * t)),
    );
    replica.applyGradients(grads);
    const w = await snapshot('final');
    const d = weightAverageDecay(decay, t);
    expected = expected.map((avg, k) => avg.map((a, i) => d * a + (1 - d) * w[k][i]));
    const got = await snapshot('averaged');
    got.forEach((g, k) => g.forEach((v, i) => expect(v).toBeCloseTo(expected[k][i], 5)));
    // After a step with Adam's learning rate of 0.05 the average lags the weights.
    expect(got.some((g, k) => g.some((v, i) => Math.abs(v - w[k][i]) > 1e-3))).toBe(true);
  }
  // Batch norm's moving statistics (after the trainable weights) are the same in both exports.
  const averaged = await replica.exportWeights('averaged');
  const final = await replica.exportWeights('final');
  expect(averaged.length).toBe(final.length);
  expect(averaged.length).toBeGreaterThan(trainable);
  for (let i = trainable; i < final.length; i++) expect(averaged[i].values).toEqual(final[i].values);
  replica.dispose();
});

test('without an average, export gives the last weights either way', async () => {
  const replica = new TrainingReplica(tinySet, { model: tinyModel, learningRate: 0.05 });
  replica.applyGradients(replica.model.trainableWeights.map((w) => new Float32Array(w.read().size).fill(0.3)));
  const a = await replica.exportWeights('averaged');
  const b = await replica.exportWeights('final');
  a.forEach((w, i) => expect(w.values).toEqual(b[i].values));
  replica.dispose();
});

/** A few steps of a tiny CNN on 320 training images, with `extra` options. */
const trainTiny = (extra: Partial<TrainOptions>) =>
  train({
    dataDir: DATA,
    epochs: 1,
    batchSize: 32,
    learningRate: 3e-3,
    lrDecay: 1,
    seed: 5,
    workers: 1,
    limit: 320,
    model: { conv1Filters: 4, conv2Filters: 4, hiddenUnits: 8, dropout: 0 },
    ...extra,
  });

test.each([1, 2])(
  'train() with a weight average over %i worker(s) serves the average and returns the last step beside it',
  async (workers) => {
    const result = await trainTiny({ workers, weightAverage: 0.9 });
    expect(result.finalModel).toBeDefined();
    const served = result.model.getWeights();
    const last = result.finalModel!.getWeights();
    expect(served.map((w) => w.shape)).toEqual(last.map((w) => w.shape));
    const gap = tf.tidy(() => Math.max(...served.map((w, i) => tf.max(tf.abs(tf.sub(w, last[i]))).dataSync()[0])));
    expect(gap).toBeGreaterThan(1e-4);
    result.model.dispose();
    result.finalModel!.dispose();
  },
);

test('train() refuses a weight-average decay outside (0, 1) before it starts', async () => {
  await expect(trainTiny({ weightAverage: 1.5 })).rejects.toThrow(/weight average decay/);
});
