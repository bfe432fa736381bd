/**
 * One copy of the model being trained, with its optimizer. Training is synchronous data-parallel:
 * every replica computes gradients on its shard of a batch, the gradients are averaged, and every
 * replica applies the same average with its own Adam, so the trainable weights stay identical
 * without being sent around. In-process training is the same with a single replica.
 */
import * as tf from '@tensorflow/tfjs';
import { ImageSet } from '../data/fashionMnist';
import { adversarialBatch, AdversarialTrainingOptions } from './adversarialTraining';
import { augmentImage, AugmentOptions } from './augment';
import { classificationLoss, LossKind } from './losses';
import { buildTrainingModel, classesOf, FashionCnnOptions } from './fashionCnn';
import { mulberry32 } from './random';
import { unfuseConvolutionsUnderTape } from '../engine/unfusedUnderTape';

export interface ShardResult {
  /** Gradient of the mean loss over the shard, one array per trainable weight, in model order. */
  readonly grads: Float32Array[];
  readonly loss: number;
  readonly correct: number;
  readonly count: number;
}

/** What every replica of one training run is built with. */
export interface ReplicaOptions {
  readonly model: FashionCnnOptions;
  readonly learningRate: number;
  /** Random flips and shifts of the training images (none when absent). */
  readonly augment?: AugmentOptions;
  /** Train on adversarial versions of each batch (none when absent). */
  readonly adversarial?: AdversarialTrainingOptions;
  /** The training loss (default 'softmax'; src/train/losses.ts). */
  readonly loss?: LossKind;
  /**
   * Keep an exponential moving average of the trainable weights with this decay (none when absent);
   * exportWeights() then gives the average. weightAverageDecay() says how it starts.
   */
  readonly weightAverage?: number;
}

/** Which weights exportWeights() gives: the running average (when kept) or the last step's. */
export type WeightsKind = 'averaged' | 'final';

/**
 * The average's decay at its `update`-th update (1-based): min(decay, (1 + t) / (10 + t)), as
 * TensorFlow's ExponentialMovingAverage with num_updates, so early updates are not held near the
 * random initial weights for thousands of steps.
 */
export function weightAverageDecay(decay: number, update: number): number {
  return Math.min(decay, (1 + update) / (10 + update));
}

/** Refuses a decay that is not in (0, 1). */
export function checkWeightAverage(decay: number | undefined): void {
  if (decay !== undefined && !(decay > 0 && decay < 1))
    throw new RangeError(`weight average decay: expected a number in (0, 1), got ${decay}`);
}

export class TrainingReplica {
  readonly model: tf.Sequential;
  private readonly optimizer: tf.AdamOptimizer;

  private readonly augment?: AugmentOptions;
  private readonly adversarial?: AdversarialTrainingOptions;
  private readonly loss: LossKind;
  private readonly classes: number;
  private readonly averageDecay?: number;
  /** The running average of each trainable weight (model order), when kept. */
  private readonly averages?: tf.Variable[];
  private averageUpdates = 0;
  /** ATTA's store as floats, one image after another (absent without ATTA). */
  private readonly perturbations?: Float32Array;

  /**
   * `perturbations`: ATTA's store (adversarialTraining.ts, one perturbation per training image, shared
   * with the other replicas); each step starts its images' attack from theirs and writes the result back.
   */
  constructor(
    private readonly data: ImageSet,
    opts: ReplicaOptions,
    perturbations?: SharedArrayBuffer,
  ) {
    this.perturbations = perturbations && new Float32Array(perturbations);
    this.model = buildTrainingModel(opts.model);
    // The adversarial batch's input gradient would otherwise compute conv2's (linear, hence fused)
    // filter gradient and throw it away: 24 of ~290 ms per 64-image step on wasm.
    unfuseConvolutionsUnderTape(this.model);
    this.optimizer = tf.train.adam(opts.learningRate);
    this.augment = opts.augment;
    this.adversarial = opts.adversarial;
    this.loss = opts.loss ?? 'softmax';
    this.classes = classesOf(opts.model);
    checkWeightAverage(opts.weightAverage);
    if (opts.weightAverage !== undefined) {
      this.averageDecay = opts.weightAverage;
      this.averages = this.model.trainableWeights.map((w) => tf.variable(w.read(), false));
    }
  }

  setLearningRate(lr: number): void {
    // AdamOptimizer reads this field on every step.
    (this.optimizer as unknown as { learningRate: number }).learningRate = lr;
  }

  /**
   * Forward and backward pass on the images `indices` (in training mode: dropout, batch statistics).
   * `dropoutSeed` must differ per step and shard: a seeded tfjs dropout layer draws the same mask on
   * every call, so the trainer hands each call a fresh seed (reproducible, yet a new mask per step).
   * Reads are asynchronous: the WebGPU backend cannot read synchronously in Node.
   */
  async computeGradients(indices: ArrayLike<number>, dropoutSeed: number): Promise<ShardResult> {
    this.model.layers.forEach((layer, i) => {
      if (layer.getClassName() === 'Dropout') (layer as unknown as { seed: number }).seed = dropoutSeed * 31 + i;
    });
    const n = indices.length;
    const { height, width, pixels, labels } = this.data;
    const size = height * width;
    const batch = new Float32Array(n * size);
    const y = new Int32Array(n);
    const random = mulberry32(dropoutSeed ^ 0x5bd1e995);
    for (let i = 0; i < n; i++) {
      const src = pixels.subarray(indices[i] * size, (indices[i] + 1) * size);
      if (this.augment)
        augmentImage(src, batch.subarray(i * size, (i + 1) * size), height, width, random, this.augment);
      else batch.set(src, i * size);
      y[i] = labels[indices[i]];
    }
    const weights = this.model.trainableWeights.map((w) => w.read() as tf.Variable);
    let predicted: tf.Tensor | undefined;
    const target = tf.tidy(() => tf.oneHot(tf.tensor1d(y, 'int32'), this.classes) as tf.Tensor2D);
    let x = tf.tensor4d(batch, [n, height, width, 1]);
    if (this.adversarial) {
      const clean = x;
      const store = this.perturbations;
      let start: Float32Array | undefined;
      if (store) {
        start = new Float32Array(n * size);
        for (let i = 0; i < n; i++) start.set(store.subarray(indices[i] * size, (indices[i] + 1) * size), i * size);
      }
      x = adversarialBatch(
        (xa) => this.model.apply(xa, { training: true }) as tf.Tensor2D,
        clean,
        target,
        this.adversarial,
        dropoutSeed ^ 0x2c1b3c6d,
        start,
      );
      clean.dispose();
      if (store) {
        // The next visit of each image starts here. `batch` is the clean images (ATTA is refused
        // with augmentation, whose shifted image would not match the stored perturbation).
        const adversarial = (await x.data()) as Float32Array;
        for (let i = 0; i < n; i++) {
          const at = indices[i] * size;
          for (let p = 0; p < size; p++) store[at + p] = adversarial[i * size + p] - batch[i * size + p];
        }
      }
    }
    const { value, grads } = tf.tidy(() => {
      return tf.variableGrads(() => {
        const logits = this.model.apply(x, { training: true }) as tf.Tensor;
        // variableGrads disposes every intermediate; keep the predictions for the accuracy count.
        predicted = tf.keep(tf.argMax(logits, 1));
        return classificationLoss(this.loss, target, logits as tf.Tensor2D);
      }, weights);
    });
    try {
      // Read outside tidy: tidy walks a returned TypedArray element by element. The reads are copies.
      const gradArrays = (await Promise.all(weights.map((w) => grads[w.name].data()))) as Float32Array[];
      const loss = (await value.data())[0];
      const pred = await predicted!.data();
      let correct = 0;
      for (let i = 0; i < n; i++) if (pred[i] === y[i]) correct++;
      return { grads: gradArrays, loss, correct, count: n };
    } finally {
      tf.dispose([x, target, value, predicted!, ...Object.values(grads)]);
    }
  }

  applyGradients(grads: readonly Float32Array[]): void {
    const weights = this.model.trainableWeights;
    const named = weights.map((w, i) => ({
      name: (w.read() as tf.Variable).name,
      tensor: tf.tensor(grads[i], w.shape as number[]),
    }));
    this.optimizer.applyGradients(named);
    tf.dispose(named.map((g) => g.tensor));
    if (this.averages) {
      const d = weightAverageDecay(this.averageDecay!, ++this.averageUpdates);
      tf.tidy(() =>
        this.averages!.forEach((avg, i) => avg.assign(tf.add(tf.mul(avg, d), tf.mul(weights[i].read(), 1 - d)))),
      );
    }
  }

  /**
   * All weights (trainable and batch-norm statistics) as arrays, for transfer between threads.
   * 'averaged' (the default) gives the running average of the trainable weights where one is kept,
   * the last step's otherwise; batch norm's moving statistics are the same either way.
   */
  async exportWeights(kind: WeightsKind = 'averaged'): Promise<{ shape: number[]; values: Float32Array }[]> {
    // getWeights() lists the trainable weights first, in trainableWeights' order (tfjs Container.weights).
    const all = this.model.getWeights();
    const averages = kind === 'averaged' ? this.averages : undefined;
    return Promise.all(
      all.map(async (w, i) => {
        const source = averages && i < averages.length ? averages[i] : w;
        return { shape: w.shape, values: (await source.data()) as Float32Array };
      }),
    );
  }

  dispose(): void {
    this.model.dispose();
    this.averages?.forEach((v) => v.dispose());
  }
}

/** Averages shard gradients weighted by shard size (the mean loss over the whole batch). */
export function averageGradients(results: readonly ShardResult[]): Float32Array[] {
  const total = results.reduce((s, r) => s + r.count, 0);
  return results[0].grads.map((_, k) => {
    const out = new Float32Array(results[0].grads[k].length);
    for (const r of results) {
      const w = r.count / total;
      const g = r.grads[k];
      for (let i = 0; i < out.length; i++) out[i] += w * g[i];
    }
    return out;
  });
}
