/**
 * The pieces of screening jobs, in-process against a real redis-server: the store's verdicts and
 * counts under a batch's rerun (what makes a stalled batch's second run harmless), cancel, who may
 * see a job, and the directory checks at the time a batch reads its files.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { allowedDirectory, listImages, readJobFile } from '../../src/jobs/jobDirectory';
import { JobStore, queueName, type JobVerdict } from '../../src/jobs/jobStore';
import { Spool } from '../../src/jobs/spool';
import { freeSpooledFiles, sweepSpool } from '../../src/jobs/spoolCleanup';
import { screeningJob, cancelScreeningJob } from '../../src/server/jobs';
import type { ApiContext } from '../../src/server/operations';
import type { Scope } from '../../src/request/context';
import { advsieve } from '../helpers/cli';
import { RedisServer, startRedis } from '../helpers/redisServer';

let redis: RedisServer;
let store: JobStore;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-jobstore-'));

beforeAll(async () => {
  redis = await startRedis();
  store = await JobStore.open(redis.url, { batchSize: 2, ttlSeconds: 3600 });
});

afterAll(async () => {
  await store?.close();
  await redis?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const newJob = (items: string[], keyId: string | null = 'key-a') =>
  store.submit({
    model: 'm',
    targetFpr: 0.05,
    top: 3,
    keyId,
    scopes: ['jobs'],
    directory: tmp,
    requestedDirectory: tmp,
    items,
  });

const clean = (index: number): JobVerdict => ({ index, detection: adversarial(false) });
const flagged = (index: number): JobVerdict => ({ index, detection: adversarial(true) });
const failed = (index: number): JobVerdict => ({ index, error: { code: 'CORRUPT_IMAGE' } });
function adversarial(a: boolean): NonNullable<JobVerdict['detection']> {
  return { adversarial: a, score: 1, threshold: 0, targetFpr: 0.05, detectors: [] };
}

describe('JobStore', () => {
  test('a batch recorded twice (a stalled batch rerun) overwrites its verdicts and counts nothing twice', async () => {
    const job = await newJob(['a', 'b', 'c', 'd']);
    expect(job).toMatchObject({ status: 'queued', total: 4, screened: 0 });
    expect(await store.queue('m').getJobCounts('waiting')).toMatchObject({ waiting: 2 }); // batches of 2
    expect(await store.record(job.id, [clean(0), flagged(1)])).toBe(2);
    expect(await store.get(job.id)).toMatchObject({ status: 'running', screened: 2, flagged: 1, failed: 0 });
    // The rerun: the same indices again, one now failed; then the other batch.
    expect(await store.record(job.id, [failed(0), flagged(1)])).toBe(2);
    expect(await store.get(job.id)).toMatchObject({ status: 'running', screened: 1, flagged: 1, failed: 1 });
    expect(await store.record(job.id, [clean(2), clean(3)])).toBe(4);
    const done = (await store.get(job.id))!;
    expect(done).toMatchObject({ status: 'completed', screened: 3, flagged: 1, failed: 1 });
    expect(done.finishedAt).toBeInstanceOf(Date);
    const verdicts = await store.verdicts(job.id, 0, 10);
    expect(verdicts.map((v) => v.index)).toEqual([0, 1, 2, 3]);
    expect(verdicts[0].error).toEqual({ code: 'CORRUPT_IMAGE' });
    expect(await store.verdicts(job.id, 1, 2)).toEqual([flagged(1), clean(2)]);
    expect(await store.record('00000000-0000-4000-8000-000000000000', [clean(0)])).toBe(-1);
    await store.queue('m').obliterate({ force: true });
  });

  test('cancel: a queued or running job only; a job of no images is completed at once', async () => {
    const job = await newJob(['a', 'b', 'c']);
    expect(await store.cancel(job.id)).toBe('cancelled');
    await store.record(job.id, [clean(0), clean(1)]); // a batch that was being screened finishes
    expect(await store.get(job.id)).toMatchObject({ status: 'cancelled', screened: 2 });
    expect(await store.cancel(job.id)).toBe('cancelled');
    const empty = await newJob([]);
    expect(empty.status).toBe('completed');
    expect(await store.cancel(empty.id)).toBe('completed');
    expect(await store.cancel('00000000-0000-4000-8000-000000000000')).toBeUndefined();
    expect(await store.get('not-a-uuid')).toBeUndefined();
    await store.queue('m').obliterate({ force: true });
  });

  test("a key sees and cancels its own jobs only; admin every key's; without keys, every one", async () => {
    const job = await newJob(['a'], 'key-a');
    const ctx = (keyId?: string, scopes: Scope[] = ['jobs']) =>
      ({ jobs: store, principal: keyId ? { keyId, scopes: new Set(scopes) } : undefined }) as unknown as ApiContext;
    expect((await screeningJob(ctx('key-a'), job.id)).id).toBe(job.id);
    expect((await screeningJob(ctx('boss', ['jobs', 'admin']), job.id)).id).toBe(job.id);
    expect((await screeningJob(ctx(), job.id)).id).toBe(job.id);
    for (const attempt of [() => screeningJob(ctx('key-b'), job.id), () => cancelScreeningJob(ctx('key-b'), job.id)])
      await expect(attempt()).rejects.toMatchObject({ extensions: { code: 'JOB_NOT_FOUND' } });
    expect((await store.get(job.id))!.status).toBe('queued'); // key-b's cancel did nothing
    expect((await cancelScreeningJob(ctx('key-a'), job.id)).status).toBe('cancelled');
    await expect(screeningJob({ principal: undefined } as unknown as ApiContext, job.id)).rejects.toMatchObject({
      extensions: { code: 'JOBS_UNAVAILABLE' },
    });
    await store.queue('m').obliterate({ force: true });
  });
});

describe('one queue a model, and who consumes it', () => {
  test("a job's batches go to its model's queue only", async () => {
    const job = await store.submit({ ...settings('other'), items: ['a', 'b', 'c'] });
    expect(await store.queue('other').getJobCounts('waiting')).toMatchObject({ waiting: 2 });
    expect(await store.queue('m').getJobCounts('waiting')).toMatchObject({ waiting: 0 });
    expect(queueName('a:b')).not.toContain(':'); // BullMQ refuses ':' in a queue's name
    expect(await store.batchCounts(['other'])).toEqual([['other', expect.objectContaining({ waiting: 2 })]]);
    await store.cancel(job.id);
    await store.queue('other').obliterate({ force: true });
  });

  test('consumers are counted per model while their announcement lasts, and not once withdrawn', async () => {
    expect(await store.consumersOf('x')).toBe(0);
    await store.announce('c1', ['x', 'y'], 60_000);
    await store.announce('c2', ['x'], 60_000);
    await store.announce('c1', ['x', 'y'], 60_000); // renewed: still one
    expect([await store.consumersOf('x'), await store.consumersOf('y')]).toEqual([2, 1]);
    await store.withdraw('c1', ['x', 'y']);
    expect([await store.consumersOf('x'), await store.consumersOf('y')]).toEqual([1, 0]);
    await store.announce('c3', ['z'], 1);
    await new Promise((r) => setTimeout(r, 20));
    expect(await store.consumersOf('z')).toBe(0); // a consumer that stopped renewing (killed)
  });
});

const settings = (model = 'm') => ({
  model,
  targetFpr: 0.05,
  top: 3,
  keyId: null,
  scopes: [],
  directory: null,
  requestedDirectory: null,
});

describe('the upload spool is emptied of finished jobs', () => {
  const spool = new Spool(path.join(tmp, 'spool'));
  const bytes = (s: string) => Buffer.from(s);
  const exists = (sha: string) => fs.existsSync(spool.pathOf(sha));
  /** A job of uploads, submitted as the API does: references first, then the files written. */
  const uploadJob = (contents: string[]) => {
    const items = contents.map((c) => Spool.nameOf(bytes(c)));
    return store.submit({ ...settings(), items, spooled: [...new Set(items)] }, () =>
      Promise.all(contents.map((c) => spool.put(bytes(c)))),
    );
  };
  const sha = (c: string) => Spool.nameOf(bytes(c));

  test('a file goes with the last unfinished job that holds it: completed, then cancelled', async () => {
    const a = await uploadJob(['shared', 'only-a', 'only-a']);
    const b = await uploadJob(['shared', 'only-b']);
    expect([exists(sha('shared')), exists(sha('only-a')), exists(sha('only-b'))]).toEqual([true, true, true]);
    await store.record(a.id, [clean(0), clean(1), clean(2)]); // a completes
    expect(await freeSpooledFiles(store, spool, a.id)).toBe(1);
    expect([exists(sha('shared')), exists(sha('only-a'))]).toEqual([true, false]); // b still holds 'shared'
    expect(await freeSpooledFiles(store, spool, a.id)).toBe(0); // a second release finds nothing
    expect(await store.cancel(b.id)).toBe('cancelled');
    expect(await freeSpooledFiles(store, spool, b.id)).toBe(2);
    expect([exists(sha('shared')), exists(sha('only-b'))]).toEqual([false, false]);
    await store.queue('m').obliterate({ force: true });
  });

  test('expired jobs and jobs finished without a release are swept; unfinished ones are not', async () => {
    const expired = await uploadJob(['e']);
    const finished = await uploadJob(['f']);
    const running = await uploadJob(['r', 'e']);
    await store.redis.del(`advsieve:job:${expired.id}`); // its TTL ran out
    await store.record(finished.id, [clean(0)]); // its consumer died before releasing
    expect(await sweepSpool(store, spool)).toBe(1); // 'f'; 'e' is still running's
    expect([exists(sha('e')), exists(sha('f')), exists(sha('r'))]).toEqual([true, false, true]);
    await store.redis.del(`advsieve:job:${running.id}`);
    expect(await sweepSpool(store, spool)).toBe(2);
    expect([exists(sha('e')), exists(sha('r'))]).toEqual([false, false]);
    expect(await sweepSpool(store, spool)).toBe(0);
    await store.queue('m').obliterate({ force: true });
  });

  test('a file taken by a new job while it is being removed stays', async () => {
    const name = await spool.put(bytes('again'));
    await spool.remove(name, () => Promise.resolve(true));
    await expect(spool.read(name)).resolves.toEqual(bytes('again'));
    await spool.remove(name, () => Promise.resolve(false));
    expect(exists(name)).toBe(false);
    await spool.remove(name, () => Promise.resolve(false)); // gone already: nothing to do
    expect(fs.readdirSync(path.dirname(spool.pathOf(name)))).toEqual([]); // nothing left aside
  });

  test('a job whose files cannot be written is not left holding them', async () => {
    const failing = store.submit({ ...settings(), items: [sha('w')], spooled: [sha('w')] }, () =>
      Promise.reject(new Error('disk full')),
    );
    await expect(failing).rejects.toThrow('disk full');
    expect(await store.spoolReferenced(sha('w'))).toBe(false);
    expect(await store.finishedHoldingFiles()).toEqual([]);
  });
});

describe('job directories', () => {
  const root = path.join(tmp, 'root');
  const outside = path.join(tmp, 'outside');
  beforeAll(() => {
    fs.mkdirSync(path.join(root, 'set', 'b'), { recursive: true });
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'secret.png'), 'secret');
    fs.writeFileSync(path.join(root, 'set', 'a.png'), 'a');
    fs.writeFileSync(path.join(root, 'set', 'b', 'c.png'), 'c');
    fs.writeFileSync(path.join(root, 'set', '.hidden.png'), 'h');
    fs.symlinkSync(path.join(outside, 'secret.png'), path.join(root, 'set', 'link.png'));
    fs.symlinkSync(outside, path.join(root, 'set', 'linkdir'));
  });

  test('listed: regular files only, sorted, hidden names and links left out', async () => {
    const dir = await allowedDirectory(path.join(root, 'set'), [root]);
    expect(await listImages(dir, 10)).toEqual(['a.png', path.join('b', 'c.png')]);
    expect((await listImages(dir, 0)).length).toBeGreaterThan(0); // stops past max: the caller refuses
  });

  test('refused: outside the roots as written, by a link, or with no roots', async () => {
    await expect(allowedDirectory(path.join(root, 'set', 'linkdir'), [root])).rejects.toMatchObject({
      reason: 'not-allowed',
    });
    await expect(allowedDirectory(path.join(root, '..', 'outside'), [root])).rejects.toMatchObject({
      reason: 'not-allowed',
    });
    await expect(allowedDirectory(`${root}-sibling`, [root])).rejects.toMatchObject({ reason: 'not-allowed' });
    await expect(allowedDirectory(root, [])).rejects.toMatchObject({ reason: 'not-allowed' });
    await expect(allowedDirectory(path.join(root, 'none'), [root])).rejects.toMatchObject({
      reason: 'not-a-directory',
    });
  });

  test('a link out of the root that leads nowhere is refused like one that leads somewhere', async () => {
    // Else "does not exist" against "not allowed" would tell what exists outside the root.
    fs.symlinkSync(path.join(outside, 'missing'), path.join(root, 'dangling'));
    fs.symlinkSync(path.join(root, 'set', 'missing'), path.join(root, 'dangling-in'));
    for (const p of [path.join(root, 'dangling'), path.join(root, 'dangling', 'deeper')])
      await expect(allowedDirectory(p, [root])).rejects.toMatchObject({ reason: 'not-allowed' });
    await expect(allowedDirectory(path.join(root, 'dangling-in'), [root])).rejects.toMatchObject({
      reason: 'not-a-directory',
    });
  });

  test('a file turned into a link out of the directory after listing is not read; a large one is refused', async () => {
    const dir = path.join(root, 'set');
    expect(await readJobFile(dir, 'a.png', 100)).toEqual(Buffer.from('a'));
    fs.rmSync(path.join(dir, 'a.png'));
    fs.symlinkSync(path.join(outside, 'secret.png'), path.join(dir, 'a.png'));
    expect(await readJobFile(dir, 'a.png', 100)).toMatchObject({ code: 'UNREADABLE_FILE' });
    expect(await readJobFile(dir, path.join('b', 'c.png'), 0)).toMatchObject({ code: 'IMAGE_TOO_LARGE' });
    expect(await readJobFile(dir, 'gone.png', 100)).toMatchObject({ code: 'UNREADABLE_FILE' });
  });
});

test('advsieve worker without REDIS_URL stops at once, saying why', async () => {
  delete process.env.REDIS_URL; // the helper passes the test's environment on
  const { code, stderr } = await advsieve('worker');
  expect(code).toBe(1);
  expect(stderr).toMatch(/REDIS_URL is not set/);
});
