/**
 * Per-key rate limits: one token bucket per API key.
 *
 * What a token buys: one screened image (a field's images cost its tokens per image, by its work:
 * src/request/fieldCosts.ts), plus one per HTTP request. The service's work is proportional to
 * images (decoding, inference, scoring), so a request of 64 images costs 64 times a request of one
 * and a bucket counted in requests would let a key send 256-image requests at the rate meant for
 * single images; the token per request bounds the requests that carry no image (`model`, invalid
 * queries) and is taken at the door, before the body is read. The images' tokens are taken when a
 * field reads its images, before they are decoded. A request never costs more than the bucket's
 * size (`burst`): a request the images limit admits can always run once the bucket is full.
 *
 * Why not a library: `limiter` (TokenBucket) keeps one bucket per object and tells whether tokens
 * were removed but not when they would be there (the Retry-After hint), and has no keyed store or
 * eviction; rate-limiter-flexible's in-memory limiter counts in fixed windows, which lets a client
 * spend two windows' worth across a window edge. The bucket here is a few lines behind the small
 * `RateLimiter` interface, so either can replace it.
 */

export interface BucketLimit {
  /** Tokens added per second. */
  readonly perSecond: number;
  /** Bucket size. */
  readonly burst: number;
}

/** Why tokens were not taken: when they will be there. */
export interface Refusal {
  readonly retryAfterMs: number;
}

export interface RateLimiter {
  /**
   * Takes `cost` tokens (at most the bucket's size) from `key`'s bucket. Undefined when they were
   * taken; otherwise nothing is taken and `retryAfterMs` says when they will be there. In memory
   * the answer is immediate; a shared store (src/gateway/redisRateLimit.ts) answers with a promise,
   * so callers await either and the in-memory default pays no promise of its own.
   */
  take(key: string, cost: number, limit: BucketLimit): Refusal | undefined | Promise<Refusal | undefined>;
}

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date, in ms. */
  at: number;
  /** The limit the bucket was last used with (a key's limit only changes with a restart). */
  limit: BucketLimit;
}

/** In-memory token buckets, one per key; a bucket that has refilled completely is dropped. */
export class TokenBuckets implements RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweep: number;

  /**
   * `sweepEveryMs`: how often idle buckets are looked for. A full bucket is the same as no bucket,
   * so dropping it changes nothing but the memory held: the map holds only the keys that spent
   * tokens within their refill time (burst / perSecond).
   */
  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly sweepEveryMs = 60_000,
  ) {
    this.lastSweep = now();
  }

  /** Buckets held now. */
  get size(): number {
    return this.buckets.size;
  }

  take(key: string, cost: number, limit: BucketLimit): Refusal | undefined {
    const now = this.now();
    if (now - this.lastSweep >= this.sweepEveryMs) this.sweep(now);
    const need = Math.min(cost, limit.burst);
    const bucket = this.buckets.get(key) ?? { tokens: limit.burst, at: now, limit };
    this.buckets.set(key, bucket);
    bucket.tokens = refilled(bucket, now, limit);
    bucket.at = now;
    bucket.limit = limit;
    if (bucket.tokens >= need) {
      bucket.tokens -= need;
      return undefined;
    }
    // (less a hair, so that float noise in the refill does not round 1 ms up to 2)
    return { retryAfterMs: Math.ceil(((need - bucket.tokens) / limit.perSecond) * 1000 - 1e-6) };
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [key, b] of this.buckets) if (refilled(b, now, b.limit) >= b.limit.burst) this.buckets.delete(key);
  }
}

function refilled(b: Bucket, now: number, limit: BucketLimit): number {
  return Math.min(limit.burst, b.tokens + ((now - b.at) / 1000) * limit.perSecond);
}

/**
 * One request's spending against its key's bucket: at most the bucket's size in all. A charge is
 * counted as spent before the limiter answers and given back if refused, so that two fields of one
 * request charging at once (aliases resolve concurrently) cannot both count on the same remainder.
 */
export class RequestMeter {
  private spent = 0;

  constructor(
    private readonly limiter: RateLimiter,
    private readonly key: string,
    private readonly limit: BucketLimit,
  ) {}

  /** Takes `cost` tokens (less once the request has spent a full bucket); the refusal's hint, if refused. */
  async take(cost: number): Promise<Refusal | undefined> {
    const charge = Math.min(cost, this.limit.burst - this.spent);
    if (charge <= 0) return undefined;
    this.spent += charge;
    const refusal = await this.limiter.take(this.key, charge, this.limit);
    if (refusal) this.spent -= charge;
    return refusal;
  }
}
