import { Semaphore } from '../../src/util/semaphore';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('at most `limit` tasks run at once; the others wait their turn, in order', async () => {
  const s = new Semaphore(2);
  let running = 0;
  let peak = 0;
  const started: number[] = [];
  const task = (i: number) =>
    s.run(async () => {
      started.push(i);
      peak = Math.max(peak, ++running);
      await sleep(10);
      running--;
      return i * 2;
    });
  const results = await Promise.all([0, 1, 2, 3, 4, 5].map(task));
  expect(results).toEqual([0, 2, 4, 6, 8, 10]);
  expect(peak).toBe(2);
  expect(started).toEqual([0, 1, 2, 3, 4, 5]);
  expect([s.active, s.queued]).toEqual([0, 0]);
});

test('a failing task releases its place', async () => {
  const s = new Semaphore(1);
  await expect(
    s.run(() => {
      throw new Error('boom');
    }),
  ).rejects.toThrow('boom');
  await expect(s.run(async () => 'next')).resolves.toBe('next');
  expect(s.active).toBe(0);
});

test('the limit is checked', () => {
  expect(() => new Semaphore(0)).toThrow(/semaphore limit must be an integer ≥ 1, got 0/);
});
