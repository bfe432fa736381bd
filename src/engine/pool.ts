/**
 * A pool of inference workers (worker_threads), one per core by default: each has its own tfjs
 * backend and model, since a tfjs-wasm instance runs on one thread. A batch goes to an idle worker;
 * a worker that dies mid-batch fails that batch alone (WorkerCrashedError; the engine runs it again,
 * src/engine/crashRecovery.ts) and is replaced. A batch still waiting for a worker when its deadline
 * passes is dropped unrun (DeadlineExceededError): nobody waits for its results any more. A worker reports its live tensor count and bytes with every result, so the
 * pool can report them (metrics, the soak benchmark) without asking a busy worker.
 */
import * as os from 'os';
import { Worker } from 'worker_threads';
import { workerScript } from '../util/workerScript';
import { DeadlineExceededError } from './batcher';
import type { BatchExtras, BatchOutput } from './model';
import type { AdapterDescription } from './webgpu';

export interface InferenceWorkerData {
  readonly modelDir: string;
  readonly backend?: string;
  readonly activationLayers?: readonly string[];
  /** Computed with every batch besides the forward pass (screening). */
  readonly extras?: BatchExtras;
  /** Lets tests kill a worker mid-batch; never set in production. */
  readonly faultInjection?: boolean;
}

export type WorkerRequest =
  | { type: 'run'; id: number; pixels: Float32Array; count: number; attempt: number }
  | { type: 'explain'; id: number; pixels: Float32Array; count: number; classes: Int32Array; layer?: string }
  | { type: 'memory'; id: number }
  | { type: 'crash' };

/** Grad-CAM maps (src/engine/model.ts, gradCam): one per image, at `layer`'s resolution. */
export interface Explanation {
  readonly layer: string;
  readonly height: number;
  readonly width: number;
  /** count × height × width, row-major, each map's maximum 1. */
  readonly maps: Float32Array;
}

/** A worker's live tfjs tensors (tf.memory()) after its last batch. */
export interface TensorStats {
  readonly numTensors: number;
  readonly numBytes: number;
}

export type WorkerReply =
  | {
      type: 'ready';
      backend: string;
      gpu: boolean;
      adapter?: AdapterDescription;
      sha256: string;
      /** Forward-pass floating-point operations per image (src/engine/modelCost.ts). */
      flops: number;
      tensors: TensorStats;
    }
  | { type: 'result'; id: number; output: BatchOutput; tensors: TensorStats }
  | { type: 'explained'; id: number; explanation: Explanation; tensors: TensorStats }
  | { type: 'memory'; id: number; numTensors: number }
  | { type: 'error'; id: number; message: string }
  | { type: 'fatal'; message: string };

export class WorkerCrashedError extends Error {
  readonly code = 'WORKER_CRASHED';
  constructor(detail: string) {
    super(`inference worker died while running this batch (${detail}); it has been replaced`);
    this.name = 'WorkerCrashedError';
  }
}

export interface PoolOptions extends InferenceWorkerData {
  /**
   * Number of workers. Default: one per core on a CPU backend, one on a GPU (a single worker with
   * large batches keeps a GPU busy; several would only contend for it). The first worker's backend
   * decides.
   */
  readonly workers?: number;
}

interface Job {
  readonly request: WorkerRequest & { id: number };
  readonly transfer: ArrayBuffer[];
  /** performance.now() times: when it was submitted, and after which it is not run. */
  readonly submittedAt: number;
  readonly deadline: number;
  readonly resolve: (reply: WorkerReply) => void;
  readonly reject: (err: Error) => void;
}

class PoolWorker {
  readonly worker: Worker;
  job: Job | undefined;
  /** Set once the worker has loaded its model and said so. */
  ready = false;
  backend = '';
  gpu = false;
  adapter: AdapterDescription | undefined;
  sha256 = '';
  flops = 0;
  tensors: TensorStats = { numTensors: 0, numBytes: 0 };

  constructor(
    data: InferenceWorkerData,
    onExit: (w: PoolWorker, detail: string) => void,
    onReply: (w: PoolWorker, r: WorkerReply) => void,
  ) {
    this.worker = new Worker(workerScript(__dirname, 'inferenceWorker'), { workerData: data });
    this.worker.on('message', (r: WorkerReply) => onReply(this, r));
    this.worker.on('error', (err) => onExit(this, err.message));
    this.worker.on('exit', (code) => onExit(this, `exit code ${code}`));
  }
}

export class InferencePool {
  private readonly workers: PoolWorker[] = [];
  private readonly idle: PoolWorker[] = [];
  private readonly waiting: Job[] = [];
  private nextId = 1;
  private closing = false;
  private replacements = 0;
  private readonly data: InferenceWorkerData;
  private readonly readyWaiters = new Map<PoolWorker, { resolve: () => void; reject: (e: Error) => void }>();
  /** Pending liveTensors() answers, by request id, with the worker asked. */
  private readonly memoryWaiters = new Map<number, { worker: PoolWorker; resolve: (n: number) => void }>();
  private crashesPending = 0;

  private constructor(opts: PoolOptions) {
    this.data = {
      modelDir: opts.modelDir,
      backend: opts.backend,
      activationLayers: opts.activationLayers,
      extras: opts.extras,
      faultInjection: opts.faultInjection,
    };
  }

  static async start(opts: PoolOptions): Promise<InferencePool> {
    const n = opts.workers;
    if (n !== undefined && (!Number.isInteger(n) || n < 1))
      throw new RangeError(`pool size must be an integer ≥ 1, got ${n}`);
    const pool = new InferencePool(opts);
    try {
      await pool.spawn();
      const wanted = n ?? (pool.gpu ? 1 : os.availableParallelism());
      await Promise.all(Array.from({ length: wanted - 1 }, () => pool.spawn()));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /** Workers, counting any that are still starting (a replacement). */
  get size(): number {
    return this.workers.length;
  }

  /** Workers that have loaded the model and take batches. */
  get readyWorkers(): number {
    return this.workers.filter((w) => w.ready).length;
  }

  /** Backend of the workers (all run the same one). */
  get backend(): string {
    return this.workers[0]?.backend ?? '';
  }

  /** The WebGPU adapter the workers run on, if any. */
  get adapter(): AdapterDescription | undefined {
    return this.workers[0]?.adapter;
  }

  /** Whether the workers run on a GPU. */
  get gpu(): boolean {
    return this.workers[0]?.gpu ?? false;
  }

  /** Forward-pass floating-point operations per image of the model, as its workers estimated them. */
  get flopsPerImage(): number {
    return this.workers.find((w) => w.ready)?.flops ?? 0;
  }

  get modelSha256(): string {
    return this.workers[0]?.sha256 ?? '';
  }

  /** Workers started to replace dead ones since the pool started. */
  get replacedWorkers(): number {
    return this.replacements;
  }

  /**
   * Runs one batch on an idle worker; `attempt` is 2 for the engine's rerun after a crash, 3 for an
   * image run alone after two (crashRecovery.ts). Rejects with DeadlineExceededError, unrun, when no
   * worker has taken it by `deadline` (a performance.now() time).
   */
  async run(pixels: Float32Array, count: number, attempt = 1, deadline = Infinity): Promise<BatchOutput> {
    const reply = await this.submit(
      { type: 'run', id: this.nextId++, pixels, count, attempt },
      [pixels.buffer as ArrayBuffer],
      deadline,
    );
    if (reply.type !== 'result') throw new Error(`unexpected worker reply ${reply.type}`);
    return reply.output;
  }

  /**
   * Grad-CAM of each image for the class given for it, at `layer` (default: the model's camLayer),
   * on an idle worker like a batch: a forward and a partial backward pass.
   */
  async explain(
    pixels: Float32Array,
    count: number,
    classes: Int32Array,
    layer?: string,
    deadline = Infinity,
  ): Promise<Explanation> {
    const reply = await this.submit(
      { type: 'explain', id: this.nextId++, pixels, count, classes, layer },
      [pixels.buffer as ArrayBuffer],
      deadline,
    );
    if (reply.type !== 'explained') throw new Error(`unexpected worker reply ${reply.type}`);
    return reply.explanation;
  }

  /** Live tensor count of every worker (leak tests); NaN for a worker that dies before it answers. */
  async liveTensors(): Promise<number[]> {
    // Asked of each worker directly (not through the job queue, which picks any idle worker); a busy
    // worker answers after its batch, since a worker handles its messages in order.
    return Promise.all(
      this.workers.map(
        (w) =>
          new Promise<number>((resolve) => {
            const id = this.nextId++;
            this.memoryWaiters.set(id, { worker: w, resolve });
            w.worker.postMessage({ type: 'memory', id } satisfies WorkerRequest);
          }),
      ),
    );
  }

  /** Live tensors summed over the ready workers, as each reported with its last batch. */
  tensorStats(): TensorStats {
    return this.workers
      .filter((w) => w.ready)
      .reduce(
        (sum, w) => ({
          numTensors: sum.numTensors + w.tensors.numTensors,
          numBytes: sum.numBytes + w.tensors.numBytes,
        }),
        { numTensors: 0, numBytes: 0 },
      );
  }

  /** Fault injection (tests): each of the next `n` workers to take a batch dies while holding it. */
  crashNextBatch(n = 1): void {
    if (!this.data.faultInjection) throw new Error('fault injection is disabled for this pool');
    this.crashesPending += n;
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const job of this.waiting.splice(0)) job.reject(new Error('inference pool closed'));
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
    this.workers.length = 0;
    this.idle.length = 0;
  }

  private submit(
    request: WorkerRequest & { id: number },
    transfer: ArrayBuffer[],
    deadline: number,
  ): Promise<WorkerReply> {
    if (this.closing) return Promise.reject(new Error('inference pool closed'));
    return new Promise((resolve, reject) => {
      this.waiting.push({ request, transfer, submittedAt: performance.now(), deadline, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    while (this.idle.length > 0 && this.waiting.length > 0) {
      const job = this.waiting.shift()!;
      const now = performance.now();
      if (job.deadline <= now) {
        job.reject(new DeadlineExceededError(now - job.submittedAt));
        continue;
      }
      const w = this.idle.shift()!;
      w.job = job;
      if (this.crashesPending > 0 && job.request.type === 'run') {
        this.crashesPending--;
        w.worker.postMessage({ type: 'crash' } satisfies WorkerRequest);
      }
      w.worker.postMessage(job.request, job.transfer);
    }
  }

  private spawn(): Promise<void> {
    const w = new PoolWorker(
      this.data,
      (pw, detail) => this.onExit(pw, detail),
      (pw, r) => this.onReply(pw, r),
    );
    this.workers.push(w);
    return new Promise((resolve, reject) => this.readyWaiters.set(w, { resolve, reject }));
  }

  private onReply(w: PoolWorker, reply: WorkerReply): void {
    if (reply.type === 'ready') {
      w.ready = true;
      w.backend = reply.backend;
      w.gpu = reply.gpu;
      w.adapter = reply.adapter;
      w.sha256 = reply.sha256;
      w.flops = reply.flops;
      w.tensors = reply.tensors;
      this.readyWaiters.get(w)?.resolve();
      this.readyWaiters.delete(w);
      this.idle.push(w);
      this.schedule();
      return;
    }
    if (reply.type === 'fatal') {
      const waiter = this.readyWaiters.get(w);
      this.readyWaiters.delete(w);
      waiter?.reject(new Error(`inference worker failed to start: ${reply.message}`));
      void w.worker.terminate();
      return;
    }
    if (reply.type === 'memory') {
      this.memoryWaiters.get(reply.id)?.resolve(reply.numTensors);
      this.memoryWaiters.delete(reply.id);
      return;
    }
    if (reply.type === 'result' || reply.type === 'explained') w.tensors = reply.tensors;
    const job = w.job;
    w.job = undefined;
    if (job) {
      if (reply.type === 'error') job.reject(new Error(reply.message));
      else job.resolve(reply);
    }
    this.idle.push(w);
    this.schedule();
  }

  private onExit(w: PoolWorker, detail: string): void {
    const i = this.workers.indexOf(w);
    if (i < 0) return; // already handled ('error' is followed by 'exit')
    this.workers.splice(i, 1);
    const k = this.idle.indexOf(w);
    if (k >= 0) this.idle.splice(k, 1);
    const starting = this.readyWaiters.get(w);
    if (starting) {
      this.readyWaiters.delete(w);
      starting.reject(new Error(`inference worker died while starting (${detail})`));
      return;
    }
    if (w.job) w.job.reject(new WorkerCrashedError(detail));
    w.job = undefined;
    for (const [id, waiter] of this.memoryWaiters) {
      if (waiter.worker !== w) continue;
      this.memoryWaiters.delete(id);
      waiter.resolve(NaN);
    }
    // A worker that never became ready (its model failed to load) is not replaced: the replacement
    // would fail the same way, in a loop.
    if (this.closing || !w.ready) return;
    this.replacements++;
    this.spawn().catch(() => {
      // A replacement that cannot start leaves the pool smaller; the remaining workers carry on.
    });
  }
}
