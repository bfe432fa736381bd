/**
 * The batched inference engine: a shared dynamic batcher in front of a pool of inference workers.
 * Every caller (CLI, GraphQL resolvers, benchmarks) submits single images; the batcher merges them
 * into batches across callers, and each batch runs on an idle worker.
 *
 * A batch whose worker dies under it is run once more, on another worker or the dead one's
 * replacement: a crash is usually the worker's (memory, a native fault), not the images'. If the
 * second run dies too, each image runs alone and only those that kill a worker fail
 * (src/engine/crashRecovery.ts); items past their deadline are dropped before each rerun.
 */
import { BatcherStats, BatchInfo, DynamicBatcher, SubmitOptions } from './batcher';
import { runSurvivingCrashes } from './crashRecovery';
import { BatchExtras, ImageOutput, splitBatch } from './model';
import { ModelMetadata, readMetadata } from './modelStore';
import { Explanation, InferencePool } from './pool';
import { logger } from '../util/logger';

export interface EngineOptions {
  readonly modelDir: string;
  /** Inference workers; default per backend (BATCHING_DEFAULTS). */
  readonly workers?: number;
  /** Images per batch at most; default per backend. */
  readonly maxBatch?: number;
  /** Longest an image waits for its batch to fill, in ms; default per backend. */
  readonly maxDelayMs?: number;
  /** Images waiting at most before submissions are refused with OverloadError; default per backend. */
  readonly maxQueue?: number;
  readonly backend?: string;
  readonly activationLayers?: readonly string[];
  /** Computed with every batch (the screening features: high-frequency shares, low-pass probabilities). */
  readonly extras?: BatchExtras;
  /** Lets tests kill workers (crashNextBatch, src/engine/faultInjection.ts); never in production. */
  readonly faultInjection?: boolean;
  readonly onBatch?: (info: BatchInfo) => void;
}

/**
 * Batching that suits each kind of backend. CPU (wasm, tfjs-node, cpu): one worker per core, since
 * each backend instance runs one thread; batches of at most 64: wasm's throughput per image is flat
 * from batch 8 to 128 (bench:engine), and 64 amortises a worker round trip without long batches.
 * GPU (webgpu on a hardware adapter, tfjs-node-gpu): one worker with batches of hundreds, which a
 * GPU needs to fill its cores, and a longer delay to gather them.
 */
export const BATCHING_DEFAULTS = {
  cpu: { maxBatch: 64, maxDelayMs: 5, maxQueue: 1024 },
  gpu: { maxBatch: 512, maxDelayMs: 10, maxQueue: 4096 },
} as const;

export interface EngineStats extends BatcherStats {
  /** Batches run a second time because their worker died under them (counted once per batch). */
  readonly retriedBatches: number;
  /** Workers started to replace dead ones. */
  readonly replacedWorkers: number;
}

export class Engine {
  private constructor(
    readonly pool: InferencePool,
    private readonly batcher: DynamicBatcher<Float32Array, ImageOutput>,
    readonly metadata: ModelMetadata,
    private readonly settings: { maxBatch: number; maxDelayMs: number; maxQueue: number },
    private readonly retries: { count: number },
  ) {}

  /** Values per image: height × width × channels. */
  get imageSize(): number {
    const [h, w, c] = this.metadata.inputShape;
    return h * w * c;
  }

  static async start(opts: EngineOptions): Promise<Engine> {
    const metadata = readMetadata(opts.modelDir);
    const pool = await InferencePool.start({
      modelDir: opts.modelDir,
      workers: opts.workers,
      backend: opts.backend,
      activationLayers: opts.activationLayers,
      extras: opts.extras,
      faultInjection: opts.faultInjection,
    });
    const defaults = pool.gpu ? BATCHING_DEFAULTS.gpu : BATCHING_DEFAULTS.cpu;
    const a = pool.adapter;
    const settings = {
      maxBatch: opts.maxBatch ?? defaults.maxBatch,
      maxDelayMs: opts.maxDelayMs ?? defaults.maxDelayMs,
      maxQueue: opts.maxQueue ?? defaults.maxQueue,
    };
    const retries = { count: 0 };
    // The pixels are packed afresh for each run: the first run's buffer went to the dead worker.
    const runOnce = async (images: Float32Array[], attempt: number, deadline: number) => {
      const size = images[0].length;
      const pixels = new Float32Array(images.length * size);
      images.forEach((img, i) => pixels.set(img, i * size));
      return splitBatch(await pool.run(pixels, images.length, attempt, deadline));
    };
    const batcher = new DynamicBatcher<Float32Array, ImageOutput>({
      ...settings,
      concurrency: pool.size,
      onBatch: opts.onBatch,
      run: (images, info) =>
        runSurvivingCrashes(images, info, runOnce, {
          onRerun: (n, err) => {
            retries.count++;
            logger.warn({ err: err.message, images: n }, 'inference worker died mid-batch; running the batch again');
          },
          onIsolate: (n, err) =>
            logger.warn(
              { err: err.message, images: n },
              'the rerun died too; running each image alone, so that only those that kill a worker fail',
            ),
        }),
    });
    logger.info(
      {
        backend: pool.backend,
        adapter: a,
        workers: pool.size,
        ...settings,
        model: metadata.id,
        modelSha256: pool.modelSha256,
      },
      `engine ready: ${pool.size} × ${pool.backend}${a ? ` on ${a.vendor} ${a.device}${a.software ? ' (software)' : ''}` : ''}, ` +
        `batches of ≤ ${settings.maxBatch} after ≤ ${settings.maxDelayMs} ms`,
    );
    return new Engine(pool, batcher, metadata, settings, retries);
  }

  /**
   * Classifies images (each H×W×C values in [0, 1]); one promise per image. Throws OverloadError
   * when full; an image still queued at `options.deadline` rejects with DeadlineExceededError.
   */
  infer(images: readonly Float32Array[], options?: SubmitOptions): Promise<ImageOutput>[] {
    const bad = images.findIndex((img) => img.length !== this.imageSize);
    if (bad >= 0) {
      throw new RangeError(
        `image ${bad} has ${images[bad].length} values; the model takes ${this.metadata.inputShape.join('×')} = ${this.imageSize}`,
      );
    }
    return this.batcher.submitAll(images, options);
  }

  /**
   * Grad-CAM maps (src/engine/model.ts) of images, one class each, on a worker: not batched with
   * screening (a backward pass per request), but queued with it for the workers.
   */
  explain(
    images: readonly Float32Array[],
    classes: Int32Array,
    options: { layer?: string; deadline?: number } = {},
  ): Promise<Explanation> {
    const pixels = new Float32Array(images.length * this.imageSize);
    images.forEach((img, i) => pixels.set(img, i * this.imageSize));
    return this.pool.explain(pixels, images.length, classes, options.layer, options.deadline);
  }

  stats(): EngineStats {
    return { ...this.batcher.stats(), retriedBatches: this.retries.count, replacedWorkers: this.pool.replacedWorkers };
  }

  /** The batching settings in force (after per-backend defaults). */
  get batching(): {
    readonly maxBatch: number;
    readonly maxDelayMs: number;
    readonly maxQueue: number;
    readonly workers: number;
  } {
    return { ...this.settings, workers: this.pool.size };
  }

  /** Finishes queued work, then stops the workers. */
  async close(): Promise<void> {
    await this.batcher.close();
    await this.pool.close();
  }
}
