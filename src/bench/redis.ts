/**
 * `npm run bench:redis`: what one rate-limit charge costs in Redis (src/gateway/redisRateLimit.ts)
 * on loopback, against the in-memory buckets: the latency of one charge at a time (p50, p99, max),
 * then charges per second with 64 in flight from one process (ioredis pipelines them on its one
 * connection). A request costs two charges (its own token at the door, its images when a field
 * reads them), three with body bytes. Redis is started here (Debian's redis-server) unless
 * REDIS_URL names one. Prints a table, then one JSON object as the last line.
 *
 * Options (environment): BENCH_CHARGES (sequential charges measured, default 20000), BENCH_SECONDS
 * (the concurrent run, default 3).
 */
import { RedisTokenBuckets } from '../gateway/redisRateLimit';
import { TokenBuckets } from '../gateway/rateLimit';
import { percentile, round } from './load';
import { printTable } from './measure';
import { startRedis } from './redisServer';

const CHARGES = Number(process.env.BENCH_CHARGES ?? 20_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const LIMIT = { perSecond: 1e9, burst: 1e9 }; // never refuses: every charge runs the whole script
const KEYS = 1000;

async function latencies(take: (key: string) => unknown): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < CHARGES; i++) {
    const start = performance.now();
    await take(`bench-${i % KEYS}`);
    ms.push(performance.now() - start);
  }
  return ms.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const own = process.env.REDIS_URL ? undefined : await startRedis();
  const url = process.env.REDIS_URL ?? own!.url;
  const redis = new RedisTokenBuckets({ url, keyPrefix: 'advsieve-bench:', failure: 'refuse' });
  try {
    await redis.ready();
    const memory = new TokenBuckets();
    for (let i = 0; i < 2000; i++) await redis.take(`warm-${i % KEYS}`, 1, LIMIT); // the script loaded, the connection warm
    const mem = await latencies((k) => memory.take(k, 1, LIMIT));
    const red = await latencies((k) => redis.take(k, 1, LIMIT));
    let done = 0;
    const until = performance.now() + SECONDS * 1000;
    await Promise.all(
      Array.from({ length: 64 }, async (_, c) => {
        for (let i = c; performance.now() < until; i += 64, done++) await redis.take(`bench-${i % KEYS}`, 1, LIMIT);
      }),
    );
    const perSecond = done / SECONDS;
    const figures = {
      charges: CHARGES,
      redis: {
        p50Ms: round(percentile(red, 0.5), 3),
        p99Ms: round(percentile(red, 0.99), 3),
        maxMs: round(red[red.length - 1], 3),
      },
      memory: { p50Ms: round(percentile(mem, 0.5), 4), p99Ms: round(percentile(mem, 0.99), 4) },
      concurrent64PerSec: Math.round(perSecond),
    };
    printTable(`rate-limit charge, ${CHARGES} one at a time (${url.replace(/\/\/.*@/, '//***@')})`, [
      ['Redis p50 / p99 / max', `${figures.redis.p50Ms} / ${figures.redis.p99Ms} / ${figures.redis.maxMs} ms`],
      ['in memory p50 / p99', `${figures.memory.p50Ms} / ${figures.memory.p99Ms} ms`],
      ['Redis, 64 in flight', `${figures.concurrent64PerSec} charges/s`],
    ]);
    process.stdout.write(JSON.stringify(figures) + '\n');
  } finally {
    await redis.close();
    await own?.stop();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
