/**
 * Runs attacks for the `attack` mutation on one worker thread, one attack at a time: an attack is
 * hundreds of forward and backward passes, which would starve inference if several ran at once.
 * A few may wait; beyond `maxWaiting` a call is refused at once. The worker starts on the first
 * attack, so a service that never attacks never loads a second model.
 */
import { Worker } from 'worker_threads';
import type { AttackName } from '../attacks/attack';
import { workerScript } from '../util/workerScript';

export interface AttackWorkerData {
  readonly modelDir: string;
  readonly backend?: string;
}

export interface AttackJob {
  /** One image, H×W×C values in [0, 1]. */
  readonly pixels: Float32Array;
  /** Its true (or predicted) class: the class an untargeted attack moves away from. */
  readonly label: number;
  readonly method: AttackName;
  readonly epsilon: number;
  readonly targetClass?: number;
  readonly steps?: number;
  readonly seed?: number;
}

export type AttackWorkerReply =
  | { type: 'ready' }
  | { type: 'result'; pixels: Float32Array }
  | { type: 'error'; message: string }
  | { type: 'fatal'; message: string };

export class AttackQueueFullError extends Error {
  constructor(
    readonly waiting: number,
    readonly retryAfterMs: number,
  ) {
    super(`an attack is running and ${waiting} are waiting`);
    this.name = 'AttackQueueFullError';
  }
}

export class AttackRunner {
  private worker: Promise<Worker> | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;
  private lastMs = 1000;

  constructor(
    private readonly data: AttackWorkerData,
    private readonly maxWaiting: number,
  ) {}

  /** Adversarial pixels for one image; throws AttackQueueFullError when too many wait. */
  run(job: AttackJob): Promise<Float32Array> {
    if (this.waiting > this.maxWaiting) throw new AttackQueueFullError(this.waiting - 1, this.lastMs * this.waiting);
    this.waiting++;
    const result = this.tail.then(() => this.runNow(job)).finally(() => this.waiting--);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Waits for the attacks admitted so far, then stops the worker. */
  async close(): Promise<void> {
    await this.tail;
    const w = this.worker;
    this.worker = undefined;
    if (w) await (await w.catch(() => undefined))?.terminate();
  }

  private async runNow(job: AttackJob): Promise<Float32Array> {
    const worker = await this.start();
    const start = performance.now();
    try {
      return await new Promise<Float32Array>((resolve, reject) => {
        const onMessage = (r: AttackWorkerReply) => {
          cleanup();
          if (r.type === 'result') resolve(r.pixels);
          else reject(new Error(r.type === 'ready' ? 'unexpected reply' : r.message));
        };
        const onExit = (code: number) => {
          cleanup();
          this.worker = undefined;
          reject(new Error(`attack worker exited (code ${code})`));
        };
        const cleanup = () => {
          worker.off('message', onMessage);
          worker.off('exit', onExit);
        };
        worker.on('message', onMessage);
        worker.on('exit', onExit);
        worker.postMessage(job, [job.pixels.buffer as ArrayBuffer]);
      });
    } finally {
      this.lastMs = performance.now() - start;
    }
  }

  private start(): Promise<Worker> {
    this.worker ??= new Promise<Worker>((resolve, reject) => {
      const w = new Worker(workerScript(__dirname, 'attackWorker'), { workerData: this.data });
      w.once('message', (r: AttackWorkerReply) => {
        if (r.type === 'ready') resolve(w);
        else {
          reject(new Error(`attack worker failed to start: ${r.type === 'fatal' ? r.message : r.type}`));
          void w.terminate();
        }
      });
      w.once('error', reject);
    }).catch((err: Error) => {
      this.worker = undefined;
      throw err;
    });
    return this.worker;
  }
}
