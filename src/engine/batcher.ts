/**
 * A dynamic batcher in the spirit of Triton's (dynamic_batch_scheduler.cc): callers enqueue items
 * one by one; a batch leaves when it holds `maxBatch` items or when its oldest item has waited
 * `maxDelayMs`, and only while fewer than `concurrency` batches are in flight (one per worker).
 * The queue is bounded: beyond `maxQueue` waiting items a submission is refused at once with an
 * OverloadError rather than queued without end.
 *
 * It keeps DataLoader's contract: one result per item, in the order given; an Error in one slot of
 * a batch's results fails only that item; a batch whose run throws fails only its own items.
 *
 * Items may carry a deadline (a `performance.now()` time): an item still waiting when its deadline
 * passes is dropped before its batch leaves and fails with DeadlineExceededError. Its caller has
 * given up on it already, and computing it would only delay the items behind it.
 */

/** Refused at admission: the queue is full. Maps to GraphQL's OVERLOADED / HTTP 503. */
export class OverloadError extends Error {
  readonly code = 'OVERLOADED';
  constructor(
    readonly queueDepth: number,
    readonly maxQueue: number,
    readonly retryAfterMs: number,
  ) {
    super(`engine queue full (${queueDepth} of ${maxQueue} waiting); retry after ${retryAfterMs} ms`);
    this.name = 'OverloadError';
  }
}

/** The item's deadline passed while it waited; it was not computed. Maps to DEADLINE_EXCEEDED / HTTP 504. */
export class DeadlineExceededError extends Error {
  readonly code = 'DEADLINE_EXCEEDED';
  constructor(readonly waitedMs: number) {
    super(`the deadline passed after ${Math.round(waitedMs)} ms in the engine queue; the image was not computed`);
    this.name = 'DeadlineExceededError';
  }
}

export interface SubmitOptions {
  /** `performance.now()` time after which a still-waiting item is dropped; default: none. */
  readonly deadline?: number;
}

export class BatcherClosedError extends Error {
  constructor() {
    super('the batcher is closed and accepts no new work');
    this.name = 'BatcherClosedError';
  }
}

export interface BatcherOptions<I, O> {
  /** Most items in one batch. */
  readonly maxBatch: number;
  /** Longest the oldest waiting item waits for its batch to fill before a partial batch leaves. */
  readonly maxDelayMs: number;
  /** Most items waiting (not yet in a batch); more are refused with OverloadError. */
  readonly maxQueue: number;
  /** Most batches in flight at once: the number of workers behind the batcher. */
  readonly concurrency: number;
  /**
   * Runs one batch; must return one result (or Error) per item, in order. `info` tells, per item,
   * when it was submitted and its deadline, for a run that retries (src/engine/crashRecovery.ts):
   * a DeadlineExceededError in an item's slot counts as that item expiring.
   */
  readonly run: (items: I[], info: readonly BatchItemInfo[]) => Promise<Array<O | Error>>;
  /** Told of every batch once it has run (metrics). */
  readonly onBatch?: (info: BatchInfo) => void;
}

/** What the batcher knows of an item besides the item itself. */
export interface BatchItemInfo {
  /** `performance.now()` at submission. */
  readonly enqueuedAt: number;
  /** `performance.now()` time after which nobody waits for the item's result; Infinity for none. */
  readonly deadline: number;
}

export interface BatchInfo {
  readonly size: number;
  /** Per item: ms from submission to the batch leaving the queue. */
  readonly queueWaitMs: number[];
  readonly computeMs: number;
  readonly failed: boolean;
}

export interface BatcherStats {
  readonly batches: number;
  readonly items: number;
  readonly failedBatches: number;
  readonly rejected: number;
  /** Items dropped unrun because their deadline passed while they waited (or before a rerun). */
  readonly expired: number;
  readonly queueDepth: number;
  readonly inFlight: number;
  /** Batch size → number of batches of that size. */
  readonly batchSizes: Readonly<Record<number, number>>;
}

interface Waiting<I, O> {
  readonly item: I;
  readonly enqueuedAt: number;
  readonly deadline: number;
  readonly resolve: (o: O) => void;
  readonly reject: (e: Error) => void;
}

function checkOptions(o: BatcherOptions<unknown, unknown>): void {
  const positiveInt = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`batcher option ${name} must be an integer ≥ 1, got ${v}`);
  };
  positiveInt('maxBatch', o.maxBatch);
  positiveInt('maxQueue', o.maxQueue);
  positiveInt('concurrency', o.concurrency);
  if (!(o.maxDelayMs >= 0)) throw new RangeError(`batcher option maxDelayMs must be ≥ 0, got ${o.maxDelayMs}`);
}

export class DynamicBatcher<I, O> {
  private readonly queue: Waiting<I, O>[] = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly counters = { batches: 0, items: 0, failedBatches: 0, rejected: 0, expired: 0 };
  private readonly sizes: Record<number, number> = {};
  /** Recent compute times, for the retry hint of an OverloadError. */
  private meanComputeMs = 0;

  constructor(private readonly opts: BatcherOptions<I, O>) {
    checkOptions(opts as BatcherOptions<unknown, unknown>);
  }

  /**
   * Enqueues all `items` or none: throws OverloadError (synchronously) when they do not fit in the
   * queue, so that one request is admitted or refused whole. Returns one promise per item.
   */
  submitAll(items: readonly I[], options: SubmitOptions = {}): Promise<O>[] {
    if (this.closed) throw new BatcherClosedError();
    // Expired items hold places only until the next batch leaves; free them before refusing anyone.
    if (this.queue.length + items.length > this.opts.maxQueue) this.dropExpired(performance.now());
    if (this.queue.length + items.length > this.opts.maxQueue) {
      this.counters.rejected += items.length;
      throw new OverloadError(this.queue.length, this.opts.maxQueue, this.retryAfterMs());
    }
    const now = performance.now();
    const deadline = options.deadline ?? Infinity;
    const promises = items.map(
      (item) =>
        new Promise<O>((resolve, reject) => {
          this.queue.push({ item, enqueuedAt: now, deadline, resolve, reject });
        }),
    );
    this.pump();
    return promises;
  }

  submit(item: I, options?: SubmitOptions): Promise<O> {
    return this.submitAll([item], options)[0];
  }

  stats(): BatcherStats {
    return { ...this.counters, queueDepth: this.queue.length, inFlight: this.inFlight, batchSizes: { ...this.sizes } };
  }

  /** Stops admitting work, sends what is queued without waiting for the delay, resolves when all ran. */
  async close(): Promise<void> {
    this.closed = true;
    this.pump();
    await this.idle();
  }

  /** Resolves once nothing is queued or in flight. */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private retryAfterMs(): number {
    // Time for the queue ahead to drain, at the recent compute time per batch, at least 100 ms.
    const batchesAhead = Math.ceil(this.queue.length / this.opts.maxBatch / this.opts.concurrency);
    return Math.max(100, Math.round(batchesAhead * (this.meanComputeMs || this.opts.maxDelayMs)));
  }

  private pump(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.inFlight < this.opts.concurrency && this.queue.length > 0) {
      const now = performance.now();
      this.dropExpiredHead(now);
      if (this.queue.length === 0) break;
      const waited = now - this.queue[0].enqueuedAt;
      if (this.queue.length >= this.opts.maxBatch || waited >= this.opts.maxDelayMs || this.closed) {
        const batch = this.takeBatch(now);
        if (batch.length > 0) void this.dispatch(batch);
      } else {
        this.timer = setTimeout(() => this.pump(), Math.max(0, this.opts.maxDelayMs - waited));
        return;
      }
    }
    if (this.queue.length === 0 && this.inFlight === 0) this.idleWaiters.splice(0).forEach((f) => f());
  }

  private expire(w: Waiting<I, O>, now: number): void {
    this.counters.expired++;
    w.reject(new DeadlineExceededError(now - w.enqueuedAt));
  }

  /** Fails, unrun, every waiting item whose deadline has passed (a full queue's last resort: O(queue)). */
  private dropExpired(now: number): void {
    let kept = 0;
    for (const w of this.queue) {
      if (w.deadline > now) this.queue[kept++] = w;
      else this.expire(w, now);
    }
    this.queue.length = kept;
  }

  /** Drops expired items at the head, so that the delay is timed from the oldest live item. */
  private dropExpiredHead(now: number): void {
    let n = 0;
    while (n < this.queue.length && this.queue[n].deadline <= now) this.expire(this.queue[n++], now);
    if (n > 0) this.queue.splice(0, n);
  }

  /** Up to maxBatch live items from the head; expired ones met on the way are dropped, not sent. */
  private takeBatch(now: number): Waiting<I, O>[] {
    const batch: Waiting<I, O>[] = [];
    let i = 0;
    for (; i < this.queue.length && batch.length < this.opts.maxBatch; i++) {
      const w = this.queue[i];
      if (w.deadline <= now) this.expire(w, now);
      else batch.push(w);
    }
    this.queue.splice(0, i);
    return batch;
  }

  private async dispatch(batch: Waiting<I, O>[]): Promise<void> {
    this.inFlight++;
    const start = performance.now();
    const queueWaitMs = batch.map((w) => start - w.enqueuedAt);
    let failed = false;
    try {
      const results = await this.opts.run(
        batch.map((w) => w.item),
        batch.map((w) => ({ enqueuedAt: w.enqueuedAt, deadline: w.deadline })),
      );
      if (!Array.isArray(results) || results.length !== batch.length) {
        throw new Error(
          `batch run returned ${Array.isArray(results) ? results.length : typeof results} results for ${batch.length} items`,
        );
      }
      batch.forEach((w, i) => {
        const r = results[i];
        if (r instanceof DeadlineExceededError) this.counters.expired++;
        if (r instanceof Error) w.reject(r);
        else w.resolve(r);
      });
    } catch (err) {
      failed = true;
      const error = err instanceof Error ? err : new Error(String(err));
      batch.forEach((w) => w.reject(error));
    } finally {
      const computeMs = performance.now() - start;
      this.meanComputeMs = this.meanComputeMs ? 0.8 * this.meanComputeMs + 0.2 * computeMs : computeMs;
      this.counters.batches++;
      this.counters.items += batch.length;
      if (failed) this.counters.failedBatches++;
      this.sizes[batch.length] = (this.sizes[batch.length] ?? 0) + 1;
      this.inFlight--;
      try {
        this.opts.onBatch?.({ size: batch.length, queueWaitMs, computeMs, failed });
      } finally {
        this.pump();
      }
    }
  }
}
