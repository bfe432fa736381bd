/**
 * The pieces of screening jobs, in-process against a real redis-server: the store's verdicts and
 * counts under a batch's rerun (what makes a stalled batch's second run harmless), cancel, who may
 * see a job, and the directory checks at the time a batch reads its files.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { allowedDirectory, listImages, readJobFile } from '../../src/jobs/jobDirectory';
import { JobStore, type JobVerdict } from '../../src/jobs/jobStore';
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
  store.submit({ model: 'm', targetFpr: 0.05, top: 3, keyId, scopes: ['jobs'], directory: tmp, items });

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
    expect(await store.queue.getJobCounts('waiting')).toMatchObject({ waiting: 2 }); // batches of 2
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
    await store.queue.obliterate({ force: true });
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
    await store.queue.obliterate({ force: true });
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
    await store.queue.obliterate({ force: true });
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
