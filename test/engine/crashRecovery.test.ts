/**
 * Crash recovery in isolation, with a scripted worker: which items run again after a worker dies,
 * which are dropped for their deadline, and how many deaths an image that kills workers costs.
 */
import { BatchItemInfo, DeadlineExceededError } from '../../src/engine/batcher';
import { runSurvivingCrashes } from '../../src/engine/crashRecovery';
import { WorkerCrashedError } from '../../src/engine/pool';

/** A fake worker pool: a run dies when it holds a killer (`kills` says on which attempts), else doubles its items. */
function scriptedPool(opts: { killers?: number[]; killsOn?: (attempt: number) => boolean; clock?: { t: number } }) {
  const runs: Array<{ items: number[]; attempt: number; deadline: number }> = [];
  let deaths = 0;
  const run = async (items: number[], attempt: number, deadline: number): Promise<number[]> => {
    runs.push({ items: [...items], attempt, deadline });
    await Promise.resolve();
    if (opts.clock && deadline <= opts.clock.t) throw new DeadlineExceededError(0); // as the pool does
    const kills = items.some((i) => opts.killers?.includes(i)) && (opts.killsOn?.(attempt) ?? true);
    if (kills) {
      deaths++;
      throw new WorkerCrashedError('exit code 70');
    }
    return items.map((i) => i * 2);
  };
  return { runs, run, deaths: () => deaths };
}

const info = (n: number, deadline = Infinity): BatchItemInfo[] =>
  Array.from({ length: n }, () => ({ enqueuedAt: 0, deadline }));

test('a batch that runs: one run, its results', async () => {
  const pool = scriptedPool({});
  expect(await runSurvivingCrashes([1, 2, 3], info(3), pool.run)).toEqual([2, 4, 6]);
  expect(pool.runs.map((r) => r.attempt)).toEqual([1]);
});

test('a death that the rerun survives (the worker’s fault): every item answered, one rerun of the whole batch', async () => {
  const pool = scriptedPool({ killers: [2], killsOn: (a) => a === 1 });
  const reruns: number[] = [];
  const out = await runSurvivingCrashes([1, 2, 3], info(3), pool.run, { onRerun: (n) => reruns.push(n) });
  expect(out).toEqual([2, 4, 6]);
  expect(pool.runs.map((r) => [r.attempt, r.items])).toEqual([
    [1, [1, 2, 3]],
    [2, [1, 2, 3]],
  ]);
  expect(reruns).toEqual([3]);
});

test('an image that kills every worker: only it fails, the others are answered, at three deaths', async () => {
  const pool = scriptedPool({ killers: [3] });
  const isolated: number[] = [];
  const out = await runSurvivingCrashes([1, 2, 3, 4, 5], info(5), pool.run, { onIsolate: (n) => isolated.push(n) });
  expect(out.slice(0, 2)).toEqual([2, 4]);
  expect(out[2]).toBeInstanceOf(WorkerCrashedError);
  expect(out.slice(3)).toEqual([8, 10]);
  expect(pool.deaths()).toBe(3);
  expect(isolated).toEqual([5]);
  expect(pool.runs.filter((r) => r.attempt === 3).map((r) => r.items)).toEqual([[1], [2], [3], [4], [5]]);
});

test('k killers in one batch cost 2 + k deaths; alone in its batch a killer costs two', async () => {
  const two = scriptedPool({ killers: [1, 4] });
  const out = await runSurvivingCrashes([1, 2, 3, 4], info(4), two.run);
  expect(out.map((o) => (o instanceof WorkerCrashedError ? 'died' : o))).toEqual(['died', 4, 6, 'died']);
  expect(two.deaths()).toBe(4);

  const alone = scriptedPool({ killers: [7] });
  const [only] = await runSurvivingCrashes([7], info(1), alone.run);
  expect(only).toBeInstanceOf(WorkerCrashedError);
  expect(alone.deaths()).toBe(2);
  expect(alone.runs.map((r) => r.attempt)).toEqual([1, 2]);
});

test('items whose deadline passed during a run are dropped before the rerun, and before the runs alone', async () => {
  const now = { t: 0 };
  const pool = scriptedPool({ killers: [3] });
  const items = [1, 2, 3, 4];
  const deadlines: BatchItemInfo[] = [
    { enqueuedAt: 0, deadline: 10 }, // expires during the first run
    { enqueuedAt: 0, deadline: 1000 },
    { enqueuedAt: 0, deadline: 1000 },
    { enqueuedAt: 0, deadline: 30 }, // expires during the rerun
  ];
  const run = async (batch: number[], attempt: number, deadline: number) => {
    now.t += 20; // each run takes 20 ms
    return pool.run(batch, attempt, deadline);
  };
  const out = await runSurvivingCrashes(items, deadlines, run, {}, () => now.t);
  expect(out[0]).toBeInstanceOf(DeadlineExceededError);
  expect(out[1]).toBe(4);
  expect(out[2]).toBeInstanceOf(WorkerCrashedError);
  expect(out[3]).toBeInstanceOf(DeadlineExceededError);
  expect((out[3] as DeadlineExceededError).waitedMs).toBe(40);
  expect(pool.runs.map((r) => r.items)).toEqual([[1, 2, 3, 4], [2, 3, 4], [2], [3]]);
  // Each run is given the latest deadline of its items: the pool drops it unrun once that passes.
  expect(pool.runs.map((r) => r.deadline)).toEqual([1000, 1000, 1000, 1000]);
});

test('every item expired after a death: nothing runs again', async () => {
  const now = { t: 0 };
  const pool = scriptedPool({ killers: [1] });
  const run = async (batch: number[], attempt: number, deadline: number) => {
    now.t = 50;
    return pool.run(batch, attempt, deadline);
  };
  const out = await runSurvivingCrashes([1, 2], info(2, 40), run, {}, () => now.t);
  expect(out.every((o) => o instanceof DeadlineExceededError)).toBe(true);
  expect(pool.runs).toHaveLength(1);
});

test('a run the pool dropped unrun at its deadline: each of its items gets DeadlineExceededError', async () => {
  const clock = { t: 100 };
  const pool = scriptedPool({ clock });
  const out = await runSurvivingCrashes([1, 2], info(2, 50), pool.run, {}, () => clock.t);
  expect(out.map((o) => o instanceof DeadlineExceededError && o.waitedMs)).toEqual([100, 100]);
});

test('an error other than a death fails the batch as before; one while running alone fails that item alone', async () => {
  const broken = async () => {
    throw new Error('model broke');
  };
  await expect(runSurvivingCrashes([1, 2], info(2), broken)).rejects.toThrow('model broke');

  const run = async (items: number[], attempt: number) => {
    if (attempt < 3) throw new WorkerCrashedError('exit code 70');
    if (items[0] === 2) throw new Error('model broke');
    return items.map((i) => i * 2);
  };
  const out = await runSurvivingCrashes([1, 2, 3], info(3), run);
  expect(out[0]).toBe(2);
  expect((out[1] as Error).message).toBe('model broke');
  expect(out[2]).toBe(6);
});
