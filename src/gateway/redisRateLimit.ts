/**
 * The per-key token buckets in Redis, shared by every replica that names the same REDIS_URL: a
 * key's limit then holds across the replicas instead of each giving it a bucket of its own.
 *
 * One charge is one Lua script (EVALSHA; ioredis sends the script itself once if Redis does not
 * have it yet), so reading the bucket, refilling it and taking the tokens is atomic however many
 * replicas charge the same key at once. The semantics are TokenBuckets' (src/gateway/rateLimit.ts):
 * the cost is capped at the bucket's size, a refusal takes nothing and says when the tokens will be
 * there, and a bucket that would be full again is gone — each write sets the key to expire when
 * its refill completes, so idle keys cost Redis nothing.
 *
 * Whose clock: Redis's (TIME inside the script). With the callers' clocks, a replica whose clock is
 * ahead would refill every key early for all replicas, and one behind would see time run backwards;
 * one clock for all charges keeps the bucket's arithmetic consistent. Since Redis 5 a script that
 * calls TIME and then writes is replicated by its effects, so a Redis replica stores the same
 * numbers; after a failover to a replica whose clock differs, elapsed time is clamped at zero.
 *
 * When Redis does not answer (down, unreachable, slower than `commandTimeoutMs`): by default the
 * charge falls back to this process's own buckets (`failure: 'local'`), so a Redis outage costs the
 * limit's precision (each replica grants a key its full rate: N replicas, up to N times the rate),
 * not the service. Admission (src/server/admission.ts) still bounds every replica's load, and the
 * verdicts themselves do not depend on Redis. With `failure: 'refuse'` — for a deployment where the
 * limit is a contract, such as billing — the request is refused with 503 RATE_LIMIT_UNAVAILABLE.
 * Commands are not queued while disconnected (enableOfflineQueue off): a charge fails at once
 * rather than waiting for a reconnection.
 */
import { Redis } from 'ioredis';
import { logger } from '../util/logger';
import { rateLimitUnavailable } from './errors';
import { BucketLimit, RateLimiter, Refusal, TokenBuckets } from './rateLimit';

/** What to do when Redis cannot be asked: use this process's buckets, or refuse with 503. */
export type RedisFailurePolicy = 'local' | 'refuse';

export interface RedisRateLimitOptions {
  readonly url: string;
  /** Prefix of the buckets' keys (several deployments may share one Redis). */
  readonly keyPrefix?: string;
  readonly failure?: RedisFailurePolicy;
  /** Longest a charge waits for Redis before the failure policy applies (ms). */
  readonly commandTimeoutMs?: number;
}

/**
 * KEYS[1]: the bucket; ARGV: tokens per second, burst, cost. Returns -1 when the tokens were
 * taken, else the ms until they will be there. `at` is kept as TIME's exact seconds.micros string
 * and the tokens with 17 digits: Lua's own number-to-string keeps 14, which loses the sub-ms part
 * of an epoch time.
 */
export const TAKE_SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local need = math.min(tonumber(ARGV[3]), burst)
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
if tokens < need then
  return math.ceil((need - tokens) / rate * 1000 - 1e-6)
end
tokens = tokens - need
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', t[1] .. '.' .. string.format('%06d', tonumber(t[2])))
redis.call('PEXPIRE', KEYS[1], math.min(1e12, math.ceil((burst - tokens) / rate * 1000) + 1))
return -1
`;

interface TakeCommand {
  advsieveTake(key: string, perSecond: number, burst: number, cost: number): Promise<number>;
}

export class RedisTokenBuckets implements RateLimiter {
  readonly kind = 'redis';
  private readonly redis: Redis & TakeCommand;
  private readonly prefix: string;
  private readonly failure: RedisFailurePolicy;
  /** This process's buckets, for `failure: 'local'` while Redis is out. */
  private readonly local = new TokenBuckets();
  /** Whether the last charge failed: the outage is logged when it starts and when it ends, not per request. */
  private failing = false;

  constructor(options: RedisRateLimitOptions) {
    this.prefix = options.keyPrefix ?? 'advsieve:ratelimit:';
    this.failure = options.failure ?? 'local';
    this.redis = new Redis(options.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? 250,
      connectTimeout: 2000,
      // After a quit, how long a socket that does not close is given (its timer would hold the process).
      disconnectTimeout: 200,
      // Reconnect for ever, at most every 2 s.
      retryStrategy: (times) => Math.min(times * 100, 2000),
    }) as Redis & TakeCommand;
    // Without a listener ioredis prints every connection error; the charges say what matters.
    this.redis.on('error', (err: Error) => logger.debug({ err }, 'rate limits: Redis connection error'));
    this.redis.defineCommand('advsieveTake', { numberOfKeys: 1, lua: TAKE_SCRIPT });
  }

  /** Resolves once connected (for start-up and tests); rejects after `ms`. */
  async ready(ms = 5000): Promise<void> {
    if (this.redis.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.redis.off('ready', onReady);
        reject(new Error(`Redis not ready after ${ms} ms`));
      }, ms);
      const onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      this.redis.once('ready', onReady);
    });
  }

  async take(key: string, cost: number, limit: BucketLimit): Promise<Refusal | undefined> {
    let retryAfterMs: number;
    try {
      retryAfterMs = await this.redis.advsieveTake(this.prefix + key, limit.perSecond, limit.burst, cost);
    } catch (err) {
      return this.whenFailing(err as Error, key, cost, limit);
    }
    if (this.failing) {
      this.failing = false;
      logger.info('rate limits: Redis answers again; buckets are shared again');
    }
    return retryAfterMs < 0 ? undefined : { retryAfterMs };
  }

  private whenFailing(err: Error, key: string, cost: number, limit: BucketLimit): Refusal | undefined {
    if (!this.failing) {
      this.failing = true;
      logger.warn(
        { err: err.message, failure: this.failure },
        this.failure === 'local'
          ? "rate limits: Redis does not answer; each key is limited by this process's own buckets until it does"
          : 'rate limits: Redis does not answer; requests of rate-limited keys are refused (503) until it does',
      );
    }
    if (this.failure === 'refuse') throw rateLimitUnavailable();
    return this.local.take(key, cost, limit);
  }

  /** Ends the connection (and the reconnection attempts of one that is down). */
  async close(): Promise<void> {
    if (this.redis.status === 'ready') await this.redis.quit().catch(() => this.redis.disconnect());
    else this.redis.disconnect();
  }
}
