/**
 * Bulk screening jobs with the real components: redis-server and PostgreSQL started here, the
 * service (`advsieve serve`, consuming too) and an `advsieve worker` as child processes. A job of
 * ADVSIEVE_TEST_JOB_IMAGES images (default 20 000, the size; about a minute on a quiet machine; docs/api.md, "Jobs", has the run and
 * its time) from a server-side directory, with the worker SIGKILLed mid-job: the job completes with
 * every image judged exactly once, in the results and in the audit log. Then cancel, paging,
 * uploads, and the coded errors (unknown job, a directory outside the allowed ones, no Redis).
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Client } from 'pg';
import { errorCode, fixtureFiles, gql, ROOT, startServer, TestServer } from '../api/helpers';
import { PostgresServer, startPostgres } from '../audit/postgresServer';
import { RedisServer, startRedis } from '../helpers/redisServer';
import { jobImagePath, writeJobImages } from '../../src/bench/jobImages';

const IMAGES = Number(process.env.ADVSIEVE_TEST_JOB_IMAGES ?? 20_000);

interface Job {
  id: string;
  status: string;
  total: number;
  screened: number;
  flagged: number;
  failed: number;
  progress: number;
  finishedAt: string | null;
}
const JOB_FIELDS = 'id status total screened flagged failed progress finishedAt';

let redis: RedisServer;
let postgres: PostgresServer;
let databaseUrl: string;
let server: TestServer;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-jobs-'));
const allowed = path.join(tmp, 'allowed');
const spool = path.join(tmp, 'spool');
const workers: ChildProcess[] = [];

function jobsEnv(): Record<string, string> {
  return {
    REDIS_URL: redis.url,
    DATABASE_URL: databaseUrl,
    ADVSIEVE_JOB_DIRS: allowed,
    ADVSIEVE_JOB_SPOOL: spool,
    ADVSIEVE_WORKERS: '1',
    ADVSIEVE_DECODE_CONCURRENCY: '1',
    // A killed consumer's batch goes to another 2-3 s after its last renewal, not BullMQ's 30 s.
    ADVSIEVE_JOB_LOCK_MS: '2000',
    ADVSIEVE_JOB_STALLED_INTERVAL_MS: '1000',
  };
}

/** `advsieve worker`, resolved once it logs that it is ready; its log lines are kept. */
async function startWorker(): Promise<{ proc: ChildProcess; logs: string[] }> {
  const proc = spawn(process.execPath, ['bin/advsieve.js', 'worker'], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', ADVSIEVE_BACKEND: 'wasm', ...jobsEnv() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  workers.push(proc);
  const logs: string[] = [];
  proc.stdout!.resume();
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker not ready in 90 s:\n${logs.join('\n')}`)), 90_000);
    proc.stderr!.on('data', (chunk: Buffer) => {
      logs.push(...chunk.toString().split('\n').filter(Boolean));
      if (logs.some((l) => l.includes('worker ready'))) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', (code) => reject(new Error(`worker exited (${code}):\n${logs.join('\n')}`)));
  });
  return { proc, logs };
}

async function submitDirectory(dir: string): Promise<Job> {
  const r = await gql<{ submitScreeningJob: Job }>(
    server,
    `mutation($d: String!) { submitScreeningJob(directory: $d) { ${JOB_FIELDS} } }`,
    { d: dir },
  );
  if (!r.body.data) throw new Error(JSON.stringify(r.body.errors));
  return r.body.data.submitScreeningJob;
}

async function job(id: string): Promise<Job> {
  const r = await gql<{ screeningJob: Job }>(server, `query($id: ID!) { screeningJob(id: $id) { ${JOB_FIELDS} } }`, {
    id,
  });
  if (!r.body.data) throw new Error(JSON.stringify(r.body.errors));
  return r.body.data.screeningJob;
}

async function waitFor(id: string, done: (j: Job) => boolean, timeoutMs: number): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const j = await job(id);
    if (done(j)) return j;
    if (Date.now() > deadline) throw new Error(`job ${id} not there in ${timeoutMs} ms: ${JSON.stringify(j)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface Verdict {
  index: number;
  file: string | null;
  sha256: string | null;
  prediction: { label: string } | null;
  detection: { adversarial: boolean } | null;
  error: { code: string } | null;
}

/** Every verdict of a job, page by page (`first` at a time), following endCursor. */
async function allVerdicts(id: string, first: number): Promise<{ verdicts: Verdict[]; pages: number }> {
  const verdicts: Verdict[] = [];
  let after: string | null = null;
  let pages = 0;
  do {
    const r: Awaited<ReturnType<typeof gql>> = await gql(
      server,
      `query($id: ID!, $first: Int!, $after: String) { screeningJob(id: $id) { verdicts(first: $first, after: $after) {
         endCursor hasNextPage verdicts { index file sha256 prediction { label } detection { adversarial } error { code } } } } }`,
      { id, first, after },
    );
    const page = (r.body.data as { screeningJob: { verdicts: { endCursor: string | null; verdicts: Verdict[] } } })
      .screeningJob.verdicts;
    verdicts.push(...page.verdicts);
    after = page.endCursor;
    pages++;
  } while (after !== null);
  return { verdicts, pages };
}

async function auditRows(jobId: string): Promise<{ rows: number; images: number }> {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const r = await client.query(
      'SELECT count(*)::int AS rows, count(DISTINCT image_index)::int AS images FROM screenings WHERE job_id = $1',
      [jobId],
    );
    return r.rows[0] as { rows: number; images: number };
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  writeJobImages(path.join(allowed, 'big'), IMAGES);
  writeJobImages(path.join(allowed, 'small'), 50);
  fs.symlinkSync('/etc', path.join(allowed, 'escape'));
  [redis, postgres] = await Promise.all([startRedis(), startPostgres()]);
  databaseUrl = postgres.url;
  server = await startServer(jobsEnv());
}, 180_000);

afterAll(async () => {
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
  await server?.stop();
  await Promise.all([redis?.stop(), postgres?.stop()]);
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('screening jobs on Redis', () => {
  test(`a job of ${IMAGES} images, its worker SIGKILLed mid-job: every image judged exactly once`, async () => {
    const worker = await startWorker();
    const start = performance.now();
    const submitted = await submitDirectory(path.join(allowed, 'big'));
    expect(submitted).toMatchObject({ status: 'QUEUED', total: IMAGES, screened: 0 });
    // Both consumers at work, then the worker killed with batches in its hands.
    await waitFor(submitted.id, (j) => j.screened >= IMAGES / 3, 600_000);
    worker.proc.kill('SIGKILL');
    const done = await waitFor(submitted.id, (j) => j.status === 'COMPLETED', 600_000);
    const seconds = (performance.now() - start) / 1000;
    console.log(`job of ${IMAGES} images: ${seconds.toFixed(1)} s (${(IMAGES / seconds).toFixed(0)} images/s)`);
    expect(done).toMatchObject({ total: IMAGES, screened: IMAGES, failed: 0, progress: 1 });
    expect(done.finishedAt).not.toBeNull();
    // The server's consumer found the killed worker's batches stalled and screened them again.
    expect(server.logs.join('\n')).toMatch(/stalled/);

    const { verdicts, pages } = await allVerdicts(submitted.id, 1000);
    expect(pages).toBe(Math.ceil(IMAGES / 1000));
    expect(verdicts).toHaveLength(IMAGES);
    expect(verdicts.map((v) => v.index)).toEqual(Array.from({ length: IMAGES }, (_, i) => i));
    expect(verdicts.every((v) => v.prediction && v.detection && !v.error)).toBe(true);
    expect(verdicts[IMAGES - 1].file).toBe(jobImagePath(IMAGES - 1));
    expect(new Set(verdicts.map((v) => v.sha256)).size).toBe(IMAGES); // distinct images, each judged once
    expect(done.flagged).toBe(verdicts.filter((v) => v.detection!.adversarial).length);
    // One audit row per image, none twice, though the stalled batches ran twice.
    expect(await auditRows(submitted.id)).toEqual({ rows: IMAGES, images: IMAGES });
    const audited = await gql<{ screenings: { totalCount: number; edges: Array<{ node: { jobId: string } }> } }>(
      server,
      'query($j: String) { screenings(filter: { jobId: $j }, first: 1) { totalCount edges { node { jobId } } } }',
      { j: submitted.id },
    );
    expect(audited.body.data!.screenings.totalCount).toBe(IMAGES);
    expect(audited.body.data!.screenings.edges[0].node.jobId).toBe(submitted.id);
  }, 1_200_000);

  test('cancel: the batches not yet screened are skipped; a finished job stays as it was', async () => {
    const submitted = await submitDirectory(path.join(allowed, 'big'));
    const cancel = (id: string) =>
      gql<{ cancelScreeningJob: Job }>(server, `mutation($id: ID!) { cancelScreeningJob(id: $id) { ${JOB_FIELDS} } }`, {
        id,
      });
    const cancelled = (await cancel(submitted.id)).body.data!.cancelScreeningJob;
    expect(cancelled.status).toBe('CANCELLED');
    expect(cancelled.finishedAt).not.toBeNull();
    // The queue drains (each skipped batch in a moment); at most the batches already taken are screened.
    const small = await submitDirectory(path.join(allowed, 'small'));
    await waitFor(small.id, (j) => j.status === 'COMPLETED', 300_000);
    const after = await job(submitted.id);
    expect(after.status).toBe('CANCELLED');
    expect(after.screened).toBeLessThan(IMAGES / 4);
    expect((await cancel(small.id)).body.data!.cancelScreeningJob.status).toBe('COMPLETED');
  }, 600_000);

  test('paging: positions in image order, a cursor per page, bad cursors and sizes refused', async () => {
    const small = await submitDirectory(path.join(allowed, 'small'));
    await waitFor(small.id, (j) => j.status === 'COMPLETED', 300_000);
    const { verdicts, pages } = await allVerdicts(small.id, 7);
    expect(pages).toBe(Math.ceil(50 / 7));
    expect(verdicts.map((v) => v.index)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    const page = (first: number, after: string | null) =>
      gql(
        server,
        'query($id: ID!, $f: Int!, $a: String) { screeningJob(id: $id) { verdicts(first: $f, after: $a) { endCursor } } }',
        {
          id: small.id,
          f: first,
          a: after,
        },
      );
    expect(
      ((await page(10, '40')).body.data as { screeningJob: { verdicts: { endCursor: null } } }).screeningJob.verdicts
        .endCursor,
    ).toBeNull();
    expect(errorCode(await page(10, 'x'))).toBe('BAD_USER_INPUT');
    expect(errorCode(await page(10, '51'))).toBe('BAD_USER_INPUT');
    expect(errorCode(await page(0, null))).toBe('BAD_USER_INPUT');
    expect(errorCode(await page(1001, null))).toBe('BAD_USER_INPUT');
  }, 600_000);

  test('uploads: spooled by SHA-256, screened in order; an unreadable one fails alone', async () => {
    const files = fixtureFiles()
      .slice(0, 3)
      .map((f) => fs.readFileSync(f));
    const images = [...files.map((f) => ({ base64: f.toString('base64') })), { base64: '***' }];
    const r = await gql<{ submitScreeningJob: Job }>(
      server,
      `mutation($i: [ImageInput!]) { submitScreeningJob(images: $i, options: { top: 2 }) { ${JOB_FIELDS} } }`,
      { i: images },
    );
    const id = r.body.data!.submitScreeningJob.id;
    const done = await waitFor(id, (j) => j.status === 'COMPLETED', 300_000);
    expect(done).toMatchObject({ total: 4, screened: 3, failed: 1 });
    const { verdicts } = await allVerdicts(id, 100);
    expect(verdicts.map((v) => v.error?.code ?? v.prediction!.label)).toEqual([
      ...fixtureFiles()
        .slice(0, 3)
        .map((f) => expect.stringMatching(new RegExp(path.basename(f).split('-')[2].slice(0, 3), 'i'))),
      'INVALID_BASE64',
    ]);
    // The job done, its spooled uploads are removed (just after its last verdicts are stored).
    const spooled = verdicts.slice(0, 3).map((v) => path.join(spool, v.sha256!.slice(0, 2), v.sha256!));
    for (let i = 0; i < 100 && spooled.some((f) => fs.existsSync(f)); i++) await new Promise((r) => setTimeout(r, 100));
    for (const v of verdicts.slice(0, 3)) expect(v.file).toBeNull();
    expect(spooled.filter((f) => fs.existsSync(f))).toEqual([]);
  }, 600_000);

  test('coded errors: unknown job, a directory outside the allowed ones (by path, .., or link), both sources', async () => {
    const unknown = await gql(server, 'query($id: ID!) { screeningJob(id: $id) { id } }', {
      id: '00000000-0000-4000-8000-000000000000',
    });
    expect(errorCode(unknown)).toBe('JOB_NOT_FOUND');
    expect(unknown.status).toBe(404);
    expect(errorCode(await gql(server, 'mutation { cancelScreeningJob(id: "../../x") { id } }'))).toBe('JOB_NOT_FOUND');
    const submit = (d: string) =>
      gql(server, 'mutation($d: String!) { submitScreeningJob(directory: $d) { id } }', { d });
    for (const outside of [
      '/etc',
      path.join(allowed, '..'),
      `${allowed}/../${path.basename(allowed)}x`,
      path.join(allowed, 'escape'),
      'relative/dir',
    ]) {
      const res = await submit(outside);
      expect([outside, errorCode(res)]).toEqual([outside, 'JOB_DIRECTORY_NOT_ALLOWED']);
      expect(res.body.errors![0].message).not.toMatch(/passwd|hosts/);
    }
    expect(errorCode(await submit(path.join(allowed, 'missing')))).toBe('BAD_USER_INPUT');
    const both = await gql(server, 'mutation($d: String!) { submitScreeningJob(directory: $d, images: []) { id } }', {
      d: allowed,
    });
    expect(errorCode(both)).toBe('BAD_USER_INPUT');
  });

  test("/metrics gives the model's queue's batches by state (what an autoscaler scales workers on)", async () => {
    const text = await (await fetch(`${server.base}/metrics`)).text();
    for (const state of ['waiting', 'active', 'delayed', 'failed'])
      expect(text).toMatch(new RegExp(`advsieve_job_batches\\{model="fashion-cnn",state="${state}"\\} \\d+`));
  });

  test('without REDIS_URL the job fields answer JOBS_UNAVAILABLE and screening is unchanged', async () => {
    const plain = await startServer({ ADVSIEVE_WORKERS: '1', ADVSIEVE_DECODE_CONCURRENCY: '1' });
    try {
      for (const q of [
        'query { screeningJob(id: "00000000-0000-4000-8000-000000000000") { id } }',
        'mutation { cancelScreeningJob(id: "00000000-0000-4000-8000-000000000000") { id } }',
        `mutation { submitScreeningJob(directory: "${allowed}") { id } }`,
      ]) {
        const r = await gql(plain, q);
        expect([q, errorCode(r), r.status]).toEqual([q, 'JOBS_UNAVAILABLE', 503]);
      }
      const screened = await gql<{ screen: Array<{ prediction: { label: string } }> }>(
        plain,
        'mutation($i: [ImageInput!]!) { screen(images: $i) { prediction { label } } }',
        { i: [{ base64: fs.readFileSync(fixtureFiles()[0]).toString('base64') }] },
      );
      expect(screened.body.data!.screen[0].prediction.label).toBe('Ankle boot');
    } finally {
      await plain.stop();
    }
  }, 180_000);
});
