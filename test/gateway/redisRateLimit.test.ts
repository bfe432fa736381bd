/**
 * The token buckets in a real Redis (Debian's redis-server, started here): TokenBuckets' semantics
 * on Redis's clock, atomic charges from several limiters at once (the replicas), keys that expire
 * once refilled, and what a charge does when Redis does not answer.
 */
import type { GraphQLError } from 'graphql';
import { Redis } from 'ioredis';
import { RedisTokenBuckets } from '../../src/gateway/redisRateLimit';
import { RequestMeter } from '../../src/gateway/rateLimit';
import { configFromEnv } from '../../src/server/config';
import { RedisServer, startRedis } from '../helpers/redisServer';

const LIMIT = { perSecond: 2, burst: 5 };

let server: RedisServer;
let admin: Redis;
const open: RedisTokenBuckets[] = [];

async function limiter(options: Partial<ConstructorParameters<typeof RedisTokenBuckets>[0]> = {}) {
  const l = new RedisTokenBuckets({ url: server.url, keyPrefix: 't:', ...options });
  open.push(l);
  if (options.url === undefined) await l.ready();
  return l;
}

beforeAll(async () => {
  server = await startRedis();
  admin = new Redis(server.url);
});

afterAll(async () => {
  await Promise.all(open.map((l) => l.close()));
  admin.disconnect();
  await server.stop();
});

test('a full bucket gives its burst, then refuses with the time until the tokens are back', async () => {
  const b = await limiter();
  // The bucket refills from its first charge on: each wait is the full one less what has refilled
  // since, at most the time this test has taken (a loaded machine stalls it for 100s of ms).
  const since = Date.now();
  for (let i = 0; i < 5; i++) expect(await b.take('burst', 1, LIMIT)).toBeUndefined();
  const one = await b.take('burst', 1, LIMIT); // 1 token at 2 per second: 500 ms
  expect(one!.retryAfterMs).toBeGreaterThanOrEqual(500 - (Date.now() - since) - 1);
  expect(one!.retryAfterMs).toBeLessThanOrEqual(500);
  const three = await b.take('burst', 3, LIMIT);
  expect(three!.retryAfterMs).toBeGreaterThanOrEqual(1500 - (Date.now() - since) - 1);
  expect(three!.retryAfterMs).toBeLessThanOrEqual(1500);
});

test('a refusal takes nothing; a cost above the burst is charged as a full bucket; keys are separate', async () => {
  const b = await limiter();
  expect(await b.take('a', 4, LIMIT)).toBeUndefined();
  expect(await b.take('a', 2, LIMIT)).toBeDefined();
  expect(await b.take('a', 1, LIMIT)).toBeUndefined(); // the refused 2 were not taken
  expect(await b.take('big', 50, LIMIT)).toBeUndefined();
  const refusal = await b.take('big', 50, LIMIT);
  expect(refusal!.retryAfterMs).toBeGreaterThan(2400); // 5 tokens at 2 per second
  expect(refusal!.retryAfterMs).toBeLessThanOrEqual(2500);
  expect(await b.take('other', 5, LIMIT)).toBeUndefined();
});

test('the bucket refills at its rate and its key expires once it is full again', async () => {
  const b = await limiter();
  // Refills completely in 500 ms: long enough that a loaded machine reads the key's TTL before it
  // expires (a 10 ms bucket had expired by then once), short enough to wait for.
  const fast = { perSecond: 20, burst: 10 };
  expect(await b.take('fast', 10, fast)).toBeUndefined();
  expect(await b.take('fast', 10, fast)).toBeDefined();
  const ttl = await admin.pttl('t:fast');
  expect(ttl).toBeGreaterThan(0);
  expect(ttl).toBeLessThanOrEqual(501);
  await new Promise((r) => setTimeout(r, 600));
  expect(await admin.exists('t:fast')).toBe(0); // a full bucket is no key at all
  expect(await b.take('fast', 10, fast)).toBeUndefined();
  // A slow bucket keeps its key for its refill time: 3 tokens at 2 per second, 1.5 s.
  expect(await b.take('slow', 3, LIMIT)).toBeUndefined();
  const slowTtl = await admin.pttl('t:slow');
  expect(slowTtl).toBeGreaterThan(1400);
  expect(slowTtl).toBeLessThanOrEqual(1501);
});

test('limiters sharing one Redis (replicas) share the bucket: concurrent charges admit exactly the burst', async () => {
  const replicas = await Promise.all([limiter(), limiter(), limiter()]);
  const slow = { perSecond: 0.001, burst: 50 }; // no refill to speak of within the test
  const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => replicas[i % 3].take('shared', 1, slow)));
  expect(answers.filter((a) => a === undefined)).toHaveLength(50);
});

test('a request meter over Redis charges at most one bucket, also when its fields charge at once', async () => {
  const b = await limiter();
  const meter = new RequestMeter(b, 'meter', LIMIT);
  const refusals = await Promise.all([meter.take(3), meter.take(3), meter.take(3)]);
  // The meter caps the request at 5 tokens in all: the first two charges are 3 and 2, the third is free.
  expect(refusals).toEqual([undefined, undefined, undefined]);
  expect(await new RequestMeter(b, 'meter', LIMIT).take(1)).toBeDefined(); // the bucket is empty
});

test("Redis unreachable: 'local' falls back to this process's buckets, 'refuse' throws RATE_LIMIT_UNAVAILABLE", async () => {
  const down = 'redis://127.0.0.1:1'; // nothing listens on port 1
  const local = await limiter({ url: down, failure: 'local' });
  for (let i = 0; i < 5; i++) expect(await local.take('k', 1, LIMIT)).toBeUndefined();
  expect(await local.take('k', 1, LIMIT)).toEqual({ retryAfterMs: expect.any(Number) as number });
  const refuse = await limiter({ url: down, failure: 'refuse' });
  const err = (await refuse.take('k', 1, LIMIT).catch((e: unknown) => e)) as GraphQLError;
  expect(err.extensions.code).toBe('RATE_LIMIT_UNAVAILABLE');
  expect((err.extensions.http as { status: number }).status).toBe(503);
});

test('Redis stopping mid-way: charges fall back at once, without waiting for a reconnection', async () => {
  const own = await startRedis();
  const b = new RedisTokenBuckets({ url: own.url, keyPrefix: 't:', failure: 'local' });
  open.push(b);
  await b.ready();
  const slow = { perSecond: 0.001, burst: 3 };
  expect(await b.take('k', 3, slow)).toBeUndefined();
  expect(await b.take('k', 1, slow)).toBeDefined(); // Redis's bucket is empty
  await own.stop();
  // Not queued behind reconnection attempts (which go on for ever): answered from this process's own, full bucket.
  expect(await b.take('k', 3, slow)).toBeUndefined();
  expect(await b.take('k', 1, slow)).toBeDefined();
});

test('REDIS_URL and the failure policy from the environment; an unknown policy stops the start', () => {
  expect(configFromEnv({}).gateway).toMatchObject({ redisUrl: undefined, redisFailure: 'local' });
  const set = configFromEnv({ REDIS_URL: 'redis://r:6379', ADVSIEVE_RATE_LIMIT_REDIS_FAILURE: 'Refuse' });
  expect(set.gateway).toMatchObject({ redisUrl: 'redis://r:6379', redisFailure: 'refuse' });
  expect(() => configFromEnv({ ADVSIEVE_RATE_LIMIT_REDIS_FAILURE: 'open' })).toThrow(
    "ADVSIEVE_RATE_LIMIT_REDIS_FAILURE must be 'local' or 'refuse'; got 'open'",
  );
});
