/**
 * Trains the reference model. Synchronous data-parallel over `workers` worker threads (one per core
 * is the point: the wasm backend runs one thread), or in-process with workers = 1. Seeded: the
 * initial weights, the shuffling and dropout follow `seed`.
 */
import * as tf from '@tensorflow/tfjs';
import { Worker } from 'worker_threads';
import { ImageSet, loadFashionMnist } from '../data/fashionMnist';
import { workerScript } from '../util/workerScript';
import { buildServingModel, buildTrainingModel, FashionCnnOptions } from './fashionCnn';
import { AdversarialTrainingOptions, adversarialSchedule, perturbationStore } from './adversarialTraining';
import { AugmentOptions } from './augment';
import { mulberry32, permutation } from './random';
import type { ProbabilityKind } from '../engine/modelStore';
import { checkLoss, LossKind, probabilityKindOf } from './losses';
import { ModelVariant, resolveVariant } from './modelVariant';
import { calibratePnnBackground, checkBackgroundQuantile, PnnBackground } from './pnnBackground';
import {
  averageGradients,
  checkWeightAverage,
  ReplicaOptions,
  ShardResult,
  TrainingReplica,
  WeightsKind,
} from './replica';

export interface TrainOptions {
  readonly dataDir: string;
  readonly epochs: number;
  readonly batchSize: number;
  /** Peak learning rate. */
  readonly learningRate: number;
  /** 'exponential': × lrDecay after each epoch; 'cosine': linear warm-up, then cosine decay to ~0. */
  readonly lrSchedule?: 'exponential' | 'cosine';
  /** Learning rate multiplier applied after each epoch ('exponential'). */
  readonly lrDecay: number;
  /** Epochs of linear warm-up ('cosine'). */
  readonly warmupEpochs?: number;
  readonly seed: number;
  readonly workers: number;
  /** Train on the first N training images only (tests, quick runs). */
  readonly limit?: number;
  /** Stop after this many steps in total (tests). */
  readonly maxSteps?: number;
  readonly backend?: string;
  readonly model?: Omit<FashionCnnOptions, 'seed'>;
  /** Random flips and shifts of the training images (none when absent). */
  readonly augment?: AugmentOptions;
  /** Adversarial training: each batch replaced by its adversarial versions (none when absent). */
  readonly adversarial?: AdversarialTrainingOptions;
  /** The training loss (default 'softmax'); 'ovr' serves per-class sigmoid probabilities. */
  readonly loss?: LossKind;
  /**
   * Serve an exponential moving average of the trainable weights with this decay instead of the last
   * step's (none when absent); the result then also carries the last step's model (`finalModel`).
   */
  readonly weightAverage?: number;
  /** With the PNN head: share of the training images given p(none) ≥ 0.5 (default 0.01; pnnBackground.ts). */
  readonly pnnBackgroundQuantile?: number;
  /**
   * Train on these images instead of Fashion-MNIST's training split in `dataDir` (the reference
   * datasets of the causes study). Worker replicas receive a copy.
   */
  readonly data?: ImageSet;
  readonly onProgress?: (p: TrainProgress) => void;
}

export interface TrainProgress {
  readonly epoch: number;
  readonly step: number;
  readonly stepsPerEpoch: number;
  readonly loss: number;
  readonly samplesPerSec: number;
}

export interface EpochStats {
  readonly epoch: number;
  readonly loss: number;
  readonly trainAccuracy: number;
  readonly learningRate: number;
  readonly seconds: number;
}

export interface TrainResult {
  /** The serving graph (batch norm folded); with `weightAverage`, of the averaged weights. */
  readonly model: tf.Sequential;
  /** With `weightAverage`: the serving graph of the last step's weights, to compare (caller disposes). */
  readonly finalModel?: tf.Sequential;
  readonly history: EpochStats[];
  readonly seconds: number;
  readonly samplesPerSec: number;
  /** Samples processed over all epochs (each epoch drops its last partial batch). */
  readonly samples: number;
  /** Images in the training set. */
  readonly trainImages: number;
  /** The variant trained, with its defaults. */
  readonly variant: ModelVariant;
  readonly loss: LossKind;
  /** What the served 'probs' are: softmax, or per-class sigmoid (loss 'ovr'). */
  readonly probabilities: ProbabilityKind;
  /** With the PNN head: its background density, set on the training images. */
  readonly pnnBackground?: PnnBackground;
}

export interface TrainWorkerData {
  readonly dataDir: string;
  readonly limit?: number;
  /** The training images themselves, when they are not Fashion-MNIST's (TrainOptions.data). */
  readonly data?: ImageSet;
  readonly backend?: string;
  readonly replica: ReplicaOptions;
  /** ATTA's perturbation store, shared by every replica (adversarialTraining.ts). */
  readonly perturbations?: SharedArrayBuffer;
}

export type TrainWorkerRequest =
  | { type: 'step'; indices: Uint32Array; dropoutSeed: number; learningRate?: number }
  /** Every replica's gradient slot, in replica order (sent once, before the first step). */
  | { type: 'peers'; slots: SharedArrayBuffer[] }
  /** Apply the mean of the slots' gradients, weighted by each replica's images in the step. */
  | { type: 'apply'; counts: number[] }
  | { type: 'export'; kind: WeightsKind };

type ExportedWeights = { shape: number[]; values: Float32Array }[];

interface ReplicaHandle {
  /** The shard's gradient; a worker replica's stays in its shared slot (`grads` is empty here). */
  step(indices: Uint32Array, dropoutSeed: number, learningRate: number): Promise<ShardResult>;
  /** Applies the mean gradient of one step's shards, `results` in replica order. */
  apply(results: readonly ShardResult[]): Promise<void>;
  exportWeights(kind: WeightsKind): Promise<ExportedWeights>;
  close(): Promise<void>;
}

function localReplica(data: ImageSet, opts: ReplicaOptions, perturbations?: SharedArrayBuffer): ReplicaHandle {
  const r = new TrainingReplica(data, opts, perturbations);
  return {
    step: async (indices, dropoutSeed, learningRate) => {
      r.setLearningRate(learningRate);
      return r.computeGradients(indices, dropoutSeed);
    },
    apply: async (results) => r.applyGradients(averageGradients(results)),
    exportWeights: (kind) => r.exportWeights(kind),
    close: async () => {
      r.dispose();
    },
  };
}

interface WorkerReplicaHandle extends ReplicaHandle {
  /** This worker's gradient slot. */
  readonly slot: SharedArrayBuffer;
  /** Hands the worker every replica's slot, in replica order. */
  peers(slots: SharedArrayBuffer[]): Promise<void>;
}

/**
 * A replica in a worker thread. Gradients do not travel through messages: each worker writes its
 * shard's gradient into a SharedArrayBuffer of its own (its slot), and on 'apply' every worker
 * averages all slots itself, in the same order, so the weights stay bitwise identical. Measured
 * (fc1 512, FGSM-RS, 2 workers): the main thread's average and the two copies of it sent back
 * took 56 of 330 ms per step; the workers' own averages run in parallel.
 */
async function workerReplica(data: TrainWorkerData): Promise<WorkerReplicaHandle> {
  const worker = new Worker(workerScript(__dirname, 'trainWorker'), { workerData: data });
  type Reply = {
    type: string;
    result?: ShardResult;
    weights?: ExportedWeights;
    slot?: SharedArrayBuffer;
    message?: string;
  };
  let pending: { resolve: (r: Reply) => void; reject: (e: Error) => void } | undefined;
  const next = () =>
    new Promise<Reply>((resolve, reject) => {
      pending = { resolve, reject };
    });
  worker.on('message', (msg: Reply) => {
    const p = pending;
    pending = undefined;
    if (msg.type === 'error') p?.reject(new Error(`training worker: ${msg.message}`));
    else p?.resolve(msg);
  });
  worker.on('error', (err) => pending?.reject(err));
  worker.on('exit', (code) => pending?.reject(new Error(`training worker exited with code ${code}`)));
  const { slot } = await next(); // ready, with the worker's gradient slot
  const ask = async (req: TrainWorkerRequest) => {
    const reply = next();
    worker.postMessage(req);
    return reply;
  };
  return {
    slot: slot!,
    step: async (indices, dropoutSeed, learningRate) =>
      (await ask({ type: 'step', indices, dropoutSeed, learningRate })).result!,
    apply: async (results) => {
      await ask({ type: 'apply', counts: results.map((r) => r.count) });
    },
    peers: async (slots) => {
      await ask({ type: 'peers', slots });
    },
    exportWeights: async (kind) => (await ask({ type: 'export', kind })).weights!,
    close: async () => {
      await worker.terminate();
    },
  };
}

/**
 * Learning rate at a step. The cosine schedule (warm-up, then half a cosine down to 1 % of the peak)
 * reaches a given accuracy in fewer epochs than a fixed or exponentially decayed rate
 * (Loshchilov & Hutter 2017; Smith & Topin 2018, "super-convergence").
 */
export function learningRateAt(
  opts: Pick<TrainOptions, 'learningRate' | 'lrSchedule' | 'lrDecay' | 'warmupEpochs' | 'epochs'>,
  step: number,
  stepsPerEpoch: number,
): number {
  const epochFloat = step / stepsPerEpoch;
  if ((opts.lrSchedule ?? 'exponential') === 'exponential')
    return opts.learningRate * Math.pow(opts.lrDecay, Math.floor(epochFloat));
  const warm = (opts.warmupEpochs ?? 1) * stepsPerEpoch;
  if (step < warm) return (opts.learningRate * (step + 1)) / warm;
  const progress = (step - warm) / Math.max(1, opts.epochs * stepsPerEpoch - warm);
  const floor = 0.01 * opts.learningRate;
  return floor + 0.5 * (opts.learningRate - floor) * (1 + Math.cos(Math.PI * Math.min(1, progress)));
}

/** One replica in-process (workers = 1), or one per worker thread, each handed every gradient slot. */
async function startReplicas(
  data: ImageSet,
  opts: TrainOptions,
  replicaOptions: ReplicaOptions,
  workers: number,
  perturbations?: SharedArrayBuffer,
): Promise<ReplicaHandle[]> {
  if (workers === 1) return [localReplica(data, replicaOptions, perturbations)];
  const inWorkers = await Promise.all(
    Array.from({ length: workers }, () =>
      workerReplica({
        dataDir: opts.dataDir,
        limit: opts.limit,
        data: opts.data,
        backend: opts.backend,
        replica: replicaOptions,
        perturbations,
      }),
    ),
  );
  const slots = inWorkers.map((w) => w.slot);
  await Promise.all(inWorkers.map((w) => w.peers(slots)));
  return inWorkers;
}

/**
 * Each worker averages the shards itself; their trainable weights (first in getWeights' order)
 * must agree bit for bit with replica 0's, whose weights are written. Batch norm's moving
 * statistics follow each replica's own shards and differ; the model keeps replica 0's.
 */
async function expectReplicasAgree(
  replicas: readonly ReplicaHandle[],
  weights: ExportedWeights,
  trainable: number,
  kind: WeightsKind,
): Promise<void> {
  for (let i = 1; i < replicas.length; i++) {
    const other = await replicas[i].exportWeights(kind);
    const k = weights
      .slice(0, trainable)
      .findIndex((w, j) => !w.values.every((v, e) => Object.is(v, other[j].values[e])));
    if (k >= 0) throw new Error(`training replicas 0 and ${i} disagree on weight ${k} after training`);
  }
}

/** Refuses settings that make no sense, before any worker starts; gives the variant and the loss. */
function checkedSettings(
  opts: TrainOptions,
  modelOptions: FashionCnnOptions,
): { variant: ModelVariant; loss: LossKind } {
  if (opts.adversarial) adversarialSchedule(opts.adversarial);
  const variant = resolveVariant(modelOptions);
  const loss = checkLoss(opts.loss ?? 'softmax');
  if (variant.head === 'pnn' && loss === 'ovr')
    // A sigmoid of a log-density needs a background density the loss would have to learn from a
    // start tens of nats away; the PNN head has its own "none" (pnnHead.ts), so the pair is refused.
    throw new RangeError(
      "loss 'ovr' with head 'pnn': the PNN head has its own 'none' density; train it with 'softmax'",
    );
  if (variant.head === 'pnn') checkBackgroundQuantile(opts.pnnBackgroundQuantile);
  checkWeightAverage(opts.weightAverage);
  if (opts.adversarial?.method === 'atta' && opts.augment)
    // The carried perturbation belongs to the image as it was; a flipped or shifted copy would get
    // another image's pattern (ATTA's authors undo the augmentation; advsieve refuses the pair).
    throw new RangeError("adversarial 'atta' with augmentation: the carried perturbations need the unaugmented images");
  return { variant, loss };
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const data = opts.data ?? loadFashionMnist('train', opts.dataDir, opts.limit);
  const modelOptions: FashionCnnOptions = { inputSize: [data.height, data.width], ...opts.model, seed: opts.seed };
  const { variant, loss } = checkedSettings(opts, modelOptions);
  const replicaOptions: ReplicaOptions = {
    model: modelOptions,
    learningRate: opts.learningRate,
    augment: opts.augment,
    adversarial: opts.adversarial,
    loss,
    weightAverage: opts.weightAverage,
  };
  const workers = Math.max(1, opts.workers);
  const perturbations =
    opts.adversarial?.method === 'atta'
      ? perturbationStore(data.count, data.height * data.width, opts.adversarial.epsilon, opts.seed ^ 0x6a09e667)
      : undefined;
  const replicas = await startReplicas(data, opts, replicaOptions, workers, perturbations);
  const random = mulberry32(opts.seed);
  const stepsPerEpoch = Math.floor(data.count / opts.batchSize);
  if (stepsPerEpoch === 0) throw new Error(`batch size ${opts.batchSize} exceeds the ${data.count} training images`);
  const history: EpochStats[] = [];
  const start = Date.now();
  let samples = 0;
  let totalSteps = 0;
  try {
    for (let epoch = 0; epoch < opts.epochs; epoch++) {
      const order = permutation(data.count, random);
      const epochStart = Date.now();
      let lossSum = 0;
      let correct = 0;
      let seen = 0;
      let step = 0;
      let lastLr = opts.learningRate;
      for (
        ;
        step < stepsPerEpoch && (opts.maxSteps === undefined || totalSteps < opts.maxSteps);
        step++, totalSteps++
      ) {
        const batch = order.subarray(step * opts.batchSize, (step + 1) * opts.batchSize);
        const lr = learningRateAt(opts, epoch * stepsPerEpoch + step, stepsPerEpoch);
        lastLr = lr;
        const shard = Math.ceil(batch.length / workers);
        const results = await Promise.all(
          replicas.map((r, w) =>
            r.step(
              batch.slice(w * shard, (w + 1) * shard),
              (opts.seed * 1_000_003 + totalSteps * workers + w) % 2 ** 31,
              lr,
            ),
          ),
        );
        await Promise.all(replicas.map((r) => r.apply(results)));
        for (const r of results) {
          lossSum += r.loss * r.count;
          correct += r.correct;
          seen += r.count;
        }
        samples += batch.length;
        opts.onProgress?.({
          epoch,
          step: step + 1,
          stepsPerEpoch,
          loss: lossSum / seen,
          samplesPerSec: samples / ((Date.now() - start) / 1000),
        });
      }
      if (seen > 0) {
        history.push({
          epoch,
          loss: lossSum / seen,
          trainAccuracy: correct / seen,
          learningRate: lastLr,
          seconds: (Date.now() - epochStart) / 1000,
        });
      }
      if (opts.maxSteps !== undefined && totalSteps >= opts.maxSteps) break;
    }
    const seconds = (Date.now() - start) / 1000;
    const probabilities = probabilityKindOf(loss);
    /** The serving graph of replica 0's weights of one kind, after checking the other replicas agree. */
    const servingModel = async (kind: WeightsKind): Promise<tf.Sequential> => {
      const weights = await replicas[0].exportWeights(kind);
      const trained = buildTrainingModel(modelOptions);
      try {
        await expectReplicasAgree(replicas, weights, trained.trainableWeights.length, kind);
        tf.tidy(() => trained.setWeights(weights.map((w) => tf.tensor(w.values, w.shape))));
        return buildServingModel(trained, modelOptions, probabilities);
      } finally {
        trained.dispose();
      }
    };
    const model = await servingModel('averaged');
    const finalModel = opts.weightAverage !== undefined ? await servingModel('final') : undefined;
    const pnnBackground =
      variant.head === 'pnn'
        ? await calibratePnnBackground(model, data, { quantile: opts.pnnBackgroundQuantile })
        : undefined;
    return {
      model,
      finalModel,
      history,
      seconds,
      samplesPerSec: samples / seconds,
      samples,
      trainImages: data.count,
      variant,
      loss,
      probabilities,
      pnnBackground,
    };
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
  }
}

/** Top-1 accuracy of a model whose last layer gives class probabilities (or logits). */
export async function accuracy(model: tf.LayersModel, set: ImageSet, batchSize = 256): Promise<number> {
  let correct = 0;
  const size = set.height * set.width;
  for (let i = 0; i < set.count; i += batchSize) {
    const n = Math.min(batchSize, set.count - i);
    const pred = tf.tidy(() => {
      const x = tf.tensor4d(set.pixels.subarray(i * size, (i + n) * size), [n, set.height, set.width, 1]);
      return tf.argMax(model.predict(x) as tf.Tensor, 1);
    });
    const p = await pred.data();
    pred.dispose();
    for (let k = 0; k < n; k++) if (p[k] === set.labels[i + k]) correct++;
  }
  return correct / set.count;
}
