/**
 * The analysis worker's client on the main thread: one worker thread, started on first use, that
 * runs the heavy analysis of `spectrum` and `defend(radius)` (src/server/analysis.ts). Jobs queue in
 * the worker's message port; at most `maxWaiting` are outstanding, beyond which a request is
 * refused OVERLOADED at once rather than queued behind minutes of work. A worker that dies fails
 * its outstanding jobs (each request answers an error) and the next job starts a fresh one.
 */
import { Worker } from 'worker_threads';
import { requestError, retryAfter } from '../request/errors';
import { workerScript } from '../util/workerScript';
import type { SpectrumAnalysis } from './analysis';

type Shape = readonly [number, number, number];

export type AnalysisJob =
  | {
      readonly id: number;
      readonly kind: 'spectrum';
      readonly pixels: Float32Array;
      readonly shape: Shape;
      readonly cutoff: number;
    }
  | {
      readonly id: number;
      readonly kind: 'lowPass';
      readonly images: Float32Array[];
      readonly shape: Shape;
      readonly radius: number;
      readonly filter: 'ideal' | 'gaussian';
    };

export type AnalysisReply =
  | { readonly id: number; readonly kind: 'ready' }
  | { readonly id: number; readonly kind: 'spectrum'; readonly result: SpectrumAnalysis }
  | { readonly id: number; readonly kind: 'lowPass'; readonly images: Float32Array[] }
  | { readonly id: number; readonly kind: 'error'; readonly message: string };

type Job = AnalysisJob extends infer J ? (J extends AnalysisJob ? Omit<J, 'id'> : never) : never;

interface Pending {
  resolve(reply: AnalysisReply): void;
  reject(err: Error): void;
}

export class AnalysisRunner {
  private worker: Promise<Worker> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly maxWaiting = 64) {}

  /** Jobs sent and not answered yet. */
  get outstanding(): number {
    return this.pending.size;
  }

  /** Starts the worker now (tfjs loads in ~1-2 s), so that the first `spectrum` does not wait for it. */
  async warm(): Promise<void> {
    await this.start();
  }

  async spectrum(pixels: Float32Array, shape: Shape, cutoff: number): Promise<SpectrumAnalysis> {
    const reply = await this.run({ kind: 'spectrum', pixels: pixels.slice(), shape, cutoff });
    if (reply.kind !== 'spectrum') throw new Error(`analysis worker: unexpected reply ${reply.kind}`);
    return reply.result;
  }

  async lowPass(
    images: readonly Float32Array[],
    shape: Shape,
    radius: number,
    filter: 'ideal' | 'gaussian',
  ): Promise<Float32Array[]> {
    if (!images.length) return [];
    const reply = await this.run({ kind: 'lowPass', images: images.map((p) => p.slice()), shape, radius, filter });
    if (reply.kind !== 'lowPass') throw new Error(`analysis worker: unexpected reply ${reply.kind}`);
    return reply.images;
  }

  private async run(job: Job): Promise<AnalysisReply> {
    if (this.closed) throw new Error('the analysis worker is closed');
    if (this.pending.size >= this.maxWaiting) {
      const ms = 1000;
      throw requestError(
        'OVERLOADED',
        `${this.pending.size} analyses (spectrum, defend at another radius) are waiting; retry after ${ms} ms`,
        503,
        { retryAfterMs: ms },
        [retryAfter(ms)],
      );
    }
    const worker = await this.start();
    const id = this.nextId++;
    const reply = new Promise<AnalysisReply>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    const transfer =
      job.kind === 'spectrum' ? [job.pixels.buffer as ArrayBuffer] : job.images.map((p) => p.buffer as ArrayBuffer);
    worker.postMessage({ ...job, id }, transfer);
    const r = await reply;
    if (r.kind === 'error') throw new Error(`analysis failed: ${r.message}`);
    return r;
  }

  private start(): Promise<Worker> {
    this.worker ??= new Promise<Worker>((resolve, reject) => {
      const w = new Worker(workerScript(__dirname, 'analysisWorker'));
      w.on('message', (r: AnalysisReply) => {
        if (r.kind === 'ready') resolve(w);
        else if (r.id === 0) reject(new Error(r.kind === 'error' ? r.message : 'analysis worker: bad start'));
        else {
          const p = this.pending.get(r.id);
          this.pending.delete(r.id);
          p?.resolve(r);
        }
      });
      w.once('error', reject);
      w.once('exit', (code) => {
        this.worker = undefined;
        const err = new Error(`the analysis worker exited (code ${code})`);
        reject(err);
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
      });
    });
    const starting = this.worker;
    // A worker that failed to start is forgotten: the next job starts another.
    starting.catch(() => {
      if (this.worker === starting) this.worker = undefined;
    });
    return starting;
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = undefined;
    if (w) await (await w.catch(() => undefined))?.terminate();
  }
}
