/** Token buckets on a clock the test moves: burst, refusal with the exact wait, refill, eviction, per-request caps. */
import { RequestMeter, TokenBuckets } from '../../src/gateway/rateLimit';

function clock() {
  let t = 1_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const LIMIT = { perSecond: 2, burst: 5 };

test('a full bucket gives its burst, then refuses with the time until the tokens are back', () => {
  const c = clock();
  const b = new TokenBuckets(c.now);
  for (let i = 0; i < 5; i++) expect(b.take('k', 1, LIMIT)).toBeUndefined();
  expect(b.take('k', 1, LIMIT)).toEqual({ retryAfterMs: 500 }); // 1 token at 2 per second
  expect(b.take('k', 3, LIMIT)).toEqual({ retryAfterMs: 1500 });
  c.advance(499);
  expect(b.take('k', 1, LIMIT)).toEqual({ retryAfterMs: 1 });
  c.advance(1);
  expect(b.take('k', 1, LIMIT)).toBeUndefined();
  expect(b.take('k', 1, LIMIT)).toBeDefined();
});

test('a refusal takes nothing; refill stops at the burst; keys have buckets of their own', () => {
  const c = clock();
  const b = new TokenBuckets(c.now);
  expect(b.take('a', 4, LIMIT)).toBeUndefined();
  expect(b.take('a', 2, LIMIT)).toEqual({ retryAfterMs: 500 });
  expect(b.take('a', 1, LIMIT)).toBeUndefined(); // the refused 2 were not taken
  expect(b.take('b', 5, LIMIT)).toBeUndefined();
  c.advance(60_000);
  expect(b.take('a', 5, LIMIT)).toBeUndefined(); // full again, not 120 tokens
  expect(b.take('a', 1, LIMIT)).toBeDefined();
});

test('a cost above the burst is charged as a full bucket, so it can always run eventually', () => {
  const c = clock();
  const b = new TokenBuckets(c.now);
  expect(b.take('k', 50, LIMIT)).toBeUndefined();
  expect(b.take('k', 50, LIMIT)).toEqual({ retryAfterMs: 2500 });
  c.advance(2500);
  expect(b.take('k', 50, LIMIT)).toBeUndefined();
});

test('buckets that refilled completely are dropped at the next sweep; busy ones stay', () => {
  const c = clock();
  const b = new TokenBuckets(c.now, 1000);
  for (let i = 0; i < 100; i++) b.take(`idle-${i}`, 1, LIMIT);
  b.take('busy', 1, { perSecond: 0.001, burst: 5 }); // takes 1000 s to refill: must survive
  expect(b.size).toBe(101);
  c.advance(1000); // 0.5 s refills 1 token at 2 per second: the idle buckets are full again
  b.take('new', 1, LIMIT);
  expect(b.size).toBe(2);
  c.advance(10_000_000);
  b.take('new', 1, LIMIT);
  expect(b.size).toBe(1);
});

test('a request meter never charges more than one bucket in all, however many images it reads', async () => {
  const c = clock();
  const b = new TokenBuckets(c.now);
  const meter = new RequestMeter(b, 'k', LIMIT);
  expect(await meter.take(1)).toBeUndefined(); // the request's own token
  expect(await meter.take(3)).toBeUndefined(); // images of one field
  expect(await meter.take(10)).toBeUndefined(); // more images: only 1 more token, the bucket's size is reached
  expect(await meter.take(10)).toBeUndefined(); // nothing left to charge
  // A second request finds the bucket empty.
  expect(await new RequestMeter(b, 'k', LIMIT).take(1)).toEqual({ retryAfterMs: 500 });
});
