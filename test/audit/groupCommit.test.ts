/**
 * Group commit with fake writers: groups form per turn of the event loop and are capped by rows and
 * bytes; a failed group is retried member by member so that only the member whose rows fail gets the
 * error; a write that hangs fails its members at their time limit (the audit timeout, or the request's
 * deadline when earlier) and never acknowledges them afterwards, even if it lands; the waiting list is
 * bounded; drain is capped and reports what it abandoned.
 */
import { performance } from 'perf_hooks';
import { expectLogs } from '../helpers/expectedLogs';
import {
  CommitLimits,
  CommitTimeoutError,
  GroupCommit,
  GroupWriteError,
  WaitingFullError,
} from '../../src/audit/groupCommit';

const LIMITS: CommitLimits = {
  timeoutMs: 5000,
  maxWaitingRows: 10_000,
  maxWaitingBytes: 1 << 30,
  maxGroupRows: 10_000,
  maxGroupBytes: 1 << 30,
};

const tick = () => new Promise((r) => setImmediate(r));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Settles to 'ok' or the rejection, without an unhandled rejection meanwhile. */
const outcome = (p: Promise<void>) =>
  p.then(
    () => 'ok' as const,
    (err: Error) => err,
  );

/** A writer whose writes hang until released, recording every group it was given. */
function hangingWriter() {
  const groups: number[][] = [];
  const releases: Array<() => void> = [];
  const write = (rows: readonly number[]) => {
    groups.push([...rows]);
    return new Promise<void>((resolve) => releases.push(resolve));
  };
  return { groups, write, releaseAll: () => releases.splice(0).forEach((r) => r()) };
}

test('one write per turn of the event loop; records during a write form the next group', async () => {
  const groups: number[][] = [];
  let release!: () => void;
  let blocked = true;
  const group = new GroupCommit<number>(async (rows) => {
    groups.push([...rows]);
    if (blocked) await new Promise<void>((r) => (release = r));
  }, LIMITS);
  const a = [group.add([1]), group.add([2, 3]), group.add([4])];
  await tick();
  expect(groups).toEqual([[1, 2, 3, 4]]);
  const b = [group.add([5]), group.add([6])]; // while the first group is being written
  await sleep(5);
  expect(groups).toHaveLength(1);
  blocked = false;
  release();
  await Promise.all([...a, ...b]);
  expect(groups).toEqual([
    [1, 2, 3, 4],
    [5, 6],
  ]);
});

test('a failed group is retried member by member: only the member whose rows fail gets the error', async () => {
  const writes: number[][] = [];
  const group = new GroupCommit<number>((rows) => {
    writes.push([...rows]);
    if (rows.includes(13)) throw new Error('row 13 violates a constraint');
  }, LIMITS);
  const results = await Promise.all([group.add([1, 2]), group.add([13]), group.add([3])].map(outcome));
  expect(results[0]).toBe('ok');
  expect(results[1]).toBeInstanceOf(Error);
  expect((results[1] as Error).message).toBe('row 13 violates a constraint');
  expect(results[2]).toBe('ok');
  expect(writes).toEqual([[1, 2, 13, 3], [1, 2], [13], [3]]);
  // The next group is written as usual.
  await group.add([4]);
  expect(writes[writes.length - 1]).toEqual([4]);
});

test('a failure of the whole store (GroupWriteError) fails the group at once, without retries', async () => {
  let fail = true;
  const writes: number[][] = [];
  const group = new GroupCommit<number>((rows) => {
    writes.push([...rows]);
    if (fail) throw new GroupWriteError('disk full');
  }, LIMITS);
  const results = await Promise.all([group.add([1]), group.add([2])].map(outcome));
  expect(results.map((r) => (r as Error).message)).toEqual(['disk full', 'disk full']);
  expect(writes).toEqual([[1, 2]]);
  fail = false;
  await group.add([3]);
  expect(writes).toEqual([[1, 2], [3]]);
});

test('groups are capped by rows and by bytes; a larger member is a group of its own', async () => {
  const groups: number[][] = [];
  const byRows = new GroupCommit<number>((rows) => void groups.push([...rows]), { ...LIMITS, maxGroupRows: 3 });
  await Promise.all([byRows.add([1, 2]), byRows.add([3]), byRows.add([4, 5]), byRows.add([6, 7, 8, 9])]);
  expect(groups).toEqual([
    [1, 2, 3],
    [4, 5],
    [6, 7, 8, 9],
  ]);
  groups.length = 0;
  // sizeOf: the row's value in bytes.
  const byBytes = new GroupCommit<number>(
    (rows) => void groups.push([...rows]),
    { ...LIMITS, maxGroupBytes: 100 },
    (n) => n,
  );
  await Promise.all([byBytes.add([60]), byBytes.add([30]), byBytes.add([20]), byBytes.add([500]), byBytes.add([1])]);
  expect(groups).toEqual([[60, 30], [20], [500], [1]]);
});

test('a write that hangs fails its members at the audit timeout; later records time out too, not pile up', async () => {
  const w = hangingWriter();
  const group = new GroupCommit<number>(w.write, { ...LIMITS, timeoutMs: 60 });
  const started = performance.now();
  const first = outcome(group.add([1]));
  await tick();
  const later = Array.from({ length: 50 }, (_, i) => outcome(group.add([100 + i])));
  const results = await Promise.all([first, ...later]);
  const elapsed = performance.now() - started;
  for (const r of results) {
    expect(r).toBeInstanceOf(CommitTimeoutError);
    expect((r as CommitTimeoutError).byDeadline).toBe(false);
  }
  expect(elapsed).toBeGreaterThanOrEqual(55);
  expect(elapsed).toBeLessThan(1000);
  expect(w.groups).toEqual([[1]]); // one write at a time: the hung one holds the others back
  // The hung write lands after all: its member stays failed (recorded, never acknowledged), and
  // the records that timed out while waiting are not written at all.
  w.releaseAll();
  await tick();
  await expect(first).resolves.toBeInstanceOf(CommitTimeoutError);
  const next = group.add([2]);
  await tick();
  w.releaseAll();
  await expect(next).resolves.toBeUndefined();
  expect(w.groups).toEqual([[1], [2]]);
});

test("a request's deadline earlier than the audit timeout limits its record; a passed deadline fails at once", async () => {
  const w = hangingWriter();
  const group = new GroupCommit<number>(w.write, { ...LIMITS, timeoutMs: 10_000 });
  const started = performance.now();
  const r = await outcome(group.add([1], performance.now() + 40));
  expect(r).toBeInstanceOf(CommitTimeoutError);
  expect((r as CommitTimeoutError).byDeadline).toBe(true);
  expect(performance.now() - started).toBeLessThan(1000);
  const late = await outcome(group.add([2], performance.now() - 1));
  expect(late).toBeInstanceOf(CommitTimeoutError);
  expect((late as CommitTimeoutError).byDeadline).toBe(true);
  w.releaseAll();
});

test('the waiting list is bounded by rows and by bytes: beyond, records are refused at once', async () => {
  const w = hangingWriter();
  const group = new GroupCommit<number>(w.write, { ...LIMITS, maxWaitingRows: 10, maxWaitingBytes: 1000 }, (n) => n);
  const writing = outcome(group.add([1])); // taken by the hung write: no longer waiting
  await tick();
  const fits = [outcome(group.add([1, 1, 1, 1, 1])), outcome(group.add([1, 1, 1, 1]))];
  await expect(outcome(group.add([1, 1]))).resolves.toBeInstanceOf(WaitingFullError); // 11 rows
  await expect(outcome(group.add([996]))).resolves.toBeInstanceOf(WaitingFullError); // 1005 bytes
  const last = outcome(group.add([1])); // exactly 10 rows
  w.releaseAll();
  await sleep(10); // the first write's end starts the next group
  w.releaseAll();
  expect(await Promise.all([writing, ...fits, last])).toEqual(['ok', 'ok', 'ok', 'ok']);
  expect(w.groups).toEqual([[1], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]]);
});

test('a member alone larger than the waiting bounds is accepted when nothing waits', async () => {
  const group = new GroupCommit<number>(() => undefined, { ...LIMITS, maxWaitingRows: 2 });
  await expect(group.add([1, 2, 3, 4])).resolves.toBeUndefined();
});

test('drain is capped: a hung write is abandoned, its members and the waiting ones fail, and it says so', async () => {
  const w = hangingWriter();
  const group = new GroupCommit<number>(w.write, { ...LIMITS, timeoutMs: 10_000 });
  const writing = outcome(group.add([1, 2]));
  await tick();
  const waiting = [outcome(group.add([3])), outcome(group.add([4, 5]))];
  const started = performance.now();
  const logs = expectLogs([/audit log: closed after waiting 50 ms/]);
  const abandoned = await group.drain(50).finally(logs.restore);
  expect(logs.held).toHaveLength(1);
  expect(performance.now() - started).toBeLessThan(1000);
  expect(abandoned).toEqual({ writing: { records: 1, rows: 2 }, waiting: { records: 2, rows: 3 } });
  for (const r of await Promise.all([writing, ...waiting])) expect((r as Error).message).toMatch(/closed/);
  w.releaseAll();
  // Nothing left: an idle group drains at once, abandoning nothing.
  expect(await new GroupCommit<number>(() => undefined, LIMITS).drain(50)).toEqual({
    writing: { records: 0, rows: 0 },
    waiting: { records: 0, rows: 0 },
  });
});

test('drain waits for the records being written when they commit in time', async () => {
  const group = new GroupCommit<number>(() => sleep(20), LIMITS);
  const pending = group.add([1]);
  expect(await group.drain(5000)).toEqual({ writing: { records: 0, rows: 0 }, waiting: { records: 0, rows: 0 } });
  await expect(pending).resolves.toBeUndefined();
});
