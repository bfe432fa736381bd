/**
 * A counting semaphore: at most `limit` holders at once, the others queued in arrival order. Used
 * to cap work whose memory grows with concurrency (image decoding). `run` releases even on failure.
 */
export class Semaphore {
  private held = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError(`semaphore limit must be an integer ≥ 1, got ${limit}`);
  }

  /** Holders now. */
  get active(): number {
    return this.held;
  }

  /** Callers waiting for a place. */
  get queued(): number {
    return this.waiting.length;
  }

  async run<T>(task: () => Promise<T> | T): Promise<T> {
    await this.acquire();
    try {
      return await task();
    } finally {
      this.release();
    }
  }

  private acquire(): Promise<void> {
    if (this.held < this.limit) {
      this.held++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next)
      next(); // the place passes straight to the next caller
    else this.held--;
  }
}
