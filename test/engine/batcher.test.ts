import { BatcherClosedError, DeadlineExceededError, DynamicBatcher, OverloadError } from '../../src/engine/batcher';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A run function that records batches and answers after `ms`. */
function recorder(ms = 0) {
  const batches: number[][] = [];
  const run = async (items: number[]) => {
    batches.push([...items]);
    if (ms) await sleep(ms);
    return items.map((i) => i * 10);
  };
  return { batches, run };
}

test('a batch leaves as soon as it holds maxBatch items', async () => {
  const r = recorder();
  const b = new DynamicBatcher({ maxBatch: 4, maxDelayMs: 10_000, maxQueue: 100, concurrency: 1, run: r.run });
  const out = await Promise.all(b.submitAll([1, 2, 3, 4, 5, 6, 7, 8]));
  expect(out).toEqual([10, 20, 30, 40, 50, 60, 70, 80]);
  expect(r.batches).toEqual([
    [1, 2, 3, 4],
    [5, 6, 7, 8],
  ]);
});

test('a partial batch leaves once its oldest item has waited maxDelayMs, not before', async () => {
  const r = recorder();
  // A generous delay, so that a loaded machine cannot push the late submission past it.
  const b = new DynamicBatcher({ maxBatch: 64, maxDelayMs: 400, maxQueue: 100, concurrency: 1, run: r.run });
  const start = performance.now();
  const p = b.submitAll([1, 2, 3]);
  await sleep(30);
  expect(r.batches).toEqual([]); // still waiting for the batch to fill
  b.submit(4);
  await Promise.all(p);
  const waited = performance.now() - start;
  expect(waited).toBeGreaterThanOrEqual(395);
  expect(r.batches).toEqual([[1, 2, 3, 4]]); // the late item rode along
});

test('items from separate callers merge into one batch', async () => {
  const r = recorder();
  const b = new DynamicBatcher({ maxBatch: 8, maxDelayMs: 20, maxQueue: 100, concurrency: 1, run: r.run });
  const results = await Promise.all([b.submit(1), b.submit(2), Promise.all(b.submitAll([3, 4]))]);
  expect(results).toEqual([10, 20, [30, 40]]);
  expect(r.batches).toEqual([[1, 2, 3, 4]]);
  expect(b.stats()).toMatchObject({ batches: 1, items: 4, batchSizes: { 4: 1 } });
});

test('a full queue refuses a submission at once, whole, with an OverloadError and a retry hint', async () => {
  const r = recorder(50);
  const b = new DynamicBatcher({ maxBatch: 2, maxDelayMs: 0, maxQueue: 4, concurrency: 1, run: r.run });
  const admitted = b.submitAll([1, 2]); // dispatched at once: in flight, not queued
  const queued = b.submitAll([3, 4, 5, 6]); // fills the queue
  let err: unknown;
  try {
    b.submitAll([7]);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(OverloadError);
  expect((err as OverloadError).code).toBe('OVERLOADED');
  expect((err as OverloadError).retryAfterMs).toBeGreaterThanOrEqual(100);
  expect(b.stats()).toMatchObject({ rejected: 1, queueDepth: 4 });
  expect(await Promise.all([...admitted, ...queued])).toEqual([10, 20, 30, 40, 50, 60]);
  // Once drained, work is admitted again.
  expect(await b.submit(8)).toBe(80);
});

test('results return to each caller in order, even when batches finish out of order', async () => {
  const delays = [40, 0];
  let call = 0;
  const b = new DynamicBatcher({
    maxBatch: 3,
    maxDelayMs: 0,
    maxQueue: 100,
    concurrency: 2,
    run: async (items: number[]) => {
      await sleep(delays[call++] ?? 0);
      return items.map((i) => -i);
    },
  });
  const first = Promise.all(b.submitAll([1, 2, 3]));
  const second = Promise.all(b.submitAll([4, 5, 6]));
  let firstDone = false;
  void first.then(() => {
    firstDone = true;
  });
  expect(await second).toEqual([-4, -5, -6]);
  expect(firstDone).toBe(false); // the second batch finished first
  expect(await first).toEqual([-1, -2, -3]);
});

test('no more than `concurrency` batches run at once', async () => {
  let running = 0;
  let peak = 0;
  const b = new DynamicBatcher({
    maxBatch: 2,
    maxDelayMs: 0,
    maxQueue: 100,
    concurrency: 2,
    run: async (items: number[]) => {
      peak = Math.max(peak, ++running);
      await sleep(10);
      running--;
      return items;
    },
  });
  await Promise.all(b.submitAll(Array.from({ length: 20 }, (_, i) => i)));
  expect(peak).toBe(2);
  // While workers were busy the queue grew, so later batches left full.
  expect(b.stats().batchSizes).toEqual({ 2: 10 });
});

test('a failing batch fails only its own items; an Error slot fails only its item', async () => {
  const b = new DynamicBatcher({
    maxBatch: 2,
    maxDelayMs: 0,
    maxQueue: 100,
    concurrency: 1,
    run: async (items: number[]) => {
      if (items.includes(3)) throw new Error('worker crashed');
      return items.map((i) => (i === 6 ? new Error('bad image 6') : i));
    },
  });
  const results = await Promise.allSettled(b.submitAll([1, 2, 3, 4, 5, 6]));
  expect(results.map((r) => r.status)).toEqual([
    'fulfilled',
    'fulfilled',
    'rejected',
    'rejected',
    'fulfilled',
    'rejected',
  ]);
  expect((results[2] as PromiseRejectedResult).reason.message).toBe('worker crashed');
  expect((results[5] as PromiseRejectedResult).reason.message).toBe('bad image 6');
  expect(b.stats()).toMatchObject({ batches: 3, failedBatches: 1 });
});

test('a run that breaks the one-result-per-item contract fails its batch with what was expected', async () => {
  const b = new DynamicBatcher({ maxBatch: 3, maxDelayMs: 0, maxQueue: 10, concurrency: 1, run: async () => [1] });
  await expect(Promise.all(b.submitAll([1, 2, 3]))).rejects.toThrow('batch run returned 1 results for 3 items');
});

test('close() sends queued work without waiting for the delay, then refuses new work', async () => {
  const r = recorder();
  const b = new DynamicBatcher({ maxBatch: 64, maxDelayMs: 60_000, maxQueue: 100, concurrency: 1, run: r.run });
  const p = b.submitAll([1, 2]);
  await b.close();
  expect(await Promise.all(p)).toEqual([10, 20]);
  expect(() => b.submit(3)).toThrow(BatcherClosedError);
});

test('options are checked and the bad one named', () => {
  const run = async (i: number[]) => i;
  expect(() => new DynamicBatcher({ maxBatch: 0, maxDelayMs: 1, maxQueue: 1, concurrency: 1, run })).toThrow(
    /maxBatch must be an integer ≥ 1, got 0/,
  );
  expect(() => new DynamicBatcher({ maxBatch: 1, maxDelayMs: -1, maxQueue: 1, concurrency: 1, run })).toThrow(
    /maxDelayMs/,
  );
});

test('onBatch reports size, queue waits and compute time', async () => {
  const seen: { size: number; waits: number; computeMs: number }[] = [];
  const b = new DynamicBatcher({
    maxBatch: 3,
    maxDelayMs: 0,
    maxQueue: 10,
    concurrency: 1,
    run: async (items: number[]) => {
      await sleep(15);
      return items;
    },
    onBatch: (info) => seen.push({ size: info.size, waits: info.queueWaitMs.length, computeMs: info.computeMs }),
  });
  await Promise.all(b.submitAll([1, 2, 3]));
  expect(seen).toHaveLength(1);
  expect(seen[0].size).toBe(3);
  expect(seen[0].waits).toBe(3);
  expect(seen[0].computeMs).toBeGreaterThanOrEqual(10);
});

describe('deadlines', () => {
  test('an item whose deadline passes while it waits is dropped unrun; the others of its batch run', async () => {
    const r = recorder(60);
    const b = new DynamicBatcher({ maxBatch: 2, maxDelayMs: 0, maxQueue: 100, concurrency: 1, run: r.run });
    const busy = b.submitAll([1, 2]); // occupies the one worker for 60 ms
    const soon = performance.now() + 20;
    const [late] = b.submitAll([3], { deadline: soon });
    const [patient] = b.submitAll([4], { deadline: performance.now() + 10_000 });
    const [plain] = b.submitAll([5]);
    const settled = await Promise.allSettled([late, patient, plain]);
    expect(await Promise.all(busy)).toEqual([10, 20]);
    expect(settled[0].status).toBe('rejected');
    const reason = (settled[0] as PromiseRejectedResult).reason as DeadlineExceededError;
    expect(reason).toBeInstanceOf(DeadlineExceededError);
    expect(reason.code).toBe('DEADLINE_EXCEEDED');
    expect(reason.waitedMs).toBeGreaterThanOrEqual(20);
    expect(settled.slice(1).map((x) => (x as PromiseFulfilledResult<number>).value)).toEqual([40, 50]);
    expect(r.batches).toEqual([
      [1, 2],
      [4, 5],
    ]); // 3 never reached the run function
    expect(b.stats()).toMatchObject({ expired: 1, items: 4 });
  });

  test('a deadline already passed fails the item without a run', async () => {
    const r = recorder();
    const b = new DynamicBatcher({ maxBatch: 4, maxDelayMs: 0, maxQueue: 100, concurrency: 1, run: r.run });
    await expect(b.submit(1, { deadline: performance.now() - 1 })).rejects.toBeInstanceOf(DeadlineExceededError);
    expect(r.batches).toEqual([]);
    await b.idle();
  });

  test('expired items free their places in a full queue instead of refusing newcomers', async () => {
    const r = recorder(80);
    const b = new DynamicBatcher({ maxBatch: 2, maxDelayMs: 0, maxQueue: 3, concurrency: 1, run: r.run });
    const busy = b.submitAll([1, 2]);
    const doomed = Promise.allSettled(b.submitAll([3, 4, 5], { deadline: performance.now() + 10 })); // fills the queue
    expect(() => b.submit(6)).toThrow(OverloadError); // the deadline has not passed yet
    await sleep(30);
    const admitted = b.submit(7); // the expired three make room
    expect((await doomed).every((x) => x.status === 'rejected')).toBe(true);
    expect(await admitted).toBe(70);
    await Promise.all(busy);
    expect(b.stats()).toMatchObject({ expired: 3, rejected: 1 });
  });
});
