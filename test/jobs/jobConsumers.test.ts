/**
 * Which consumer takes a job, with the real components (redis-server; `advsieve serve` that does
 * not consume, and `advsieve worker`s serving different models): a job no running consumer can
 * screen is refused at submission; a worker never takes a batch of a model it does not serve (one
 * queue a model); the spool is emptied of a finished job's uploads; and what a client is shown of
 * a directory job or an unreadable upload names no server path it was not given; a batch its
 * consumer cannot screen fails its images with a code and the job still completes.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { errorCode, fixtureFiles, gql, ROOT, startServer, TestServer } from '../api/helpers';
import { RedisServer, startRedis } from '../helpers/redisServer';
import { makeRgbModel, RGB_MODEL_ID } from '../helpers/rgbModel';
import { jobImagePath, writeJobImages } from '../../src/bench/jobImages';
import { initBackend } from '../../src/engine/backends';
import { JobStore } from '../../src/jobs/jobStore';

let redis: RedisServer;
let server: TestServer;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-jobconsumers-'));
const realRoot = path.join(tmp, 'disk3', 'images');
/** The root the operator allows: a link to another disk, which clients are not to learn of. */
const allowed = path.join(tmp, 'allowed');
const spool = path.join(tmp, 'spool');
const rgbDir = path.join(tmp, RGB_MODEL_ID);
const workers: ChildProcess[] = [];

const env = (): Record<string, string> => ({
  REDIS_URL: redis.url,
  ADVSIEVE_JOB_DIRS: allowed,
  ADVSIEVE_JOB_SPOOL: spool,
  ADVSIEVE_WORKERS: '1',
  ADVSIEVE_DECODE_CONCURRENCY: '1',
  ADVSIEVE_JOB_BATCH: '4',
});

/** `advsieve worker` with its own audit file, resolved once it is ready (its models announced). */
async function startWorker(args: string[] = []): Promise<ChildProcess> {
  const proc = spawn(process.execPath, ['bin/advsieve.js', 'worker', ...args], {
    cwd: ROOT,
    env: {
      ...process.env,
      LOG_LEVEL: 'info',
      ADVSIEVE_BACKEND: 'wasm',
      ADVSIEVE_AUDIT_DB: path.join(tmp, `worker-${workers.length}.sqlite`),
      ...env(),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  workers.push(proc);
  let logs = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker not ready in 120 s:\n${logs}`)), 120_000);
    proc.stderr!.on('data', (chunk: Buffer) => {
      logs += chunk.toString();
      if (logs.includes('worker ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', (code) => reject(new Error(`worker exited (${code}):\n${logs}`)));
  });
  return proc;
}

interface Job {
  id: string;
  status: string;
  total: number;
  screened: number;
  failed: number;
  directory: string | null;
}
interface Verdict {
  index: number;
  file: string | null;
  sha256: string | null;
  prediction: { label: string } | null;
  error: { code: string; message: string } | null;
}
const FIELDS = 'id status total screened failed directory';

function submit(args: { images?: Array<{ base64: string }>; directory?: string; model?: string }) {
  return gql<{ submitScreeningJob: Job }>(
    server,
    `mutation($i: [ImageInput!], $d: String, $m: String) { submitScreeningJob(images: $i, directory: $d, model: $m) { ${FIELDS} } }`,
    { i: args.images ?? null, d: args.directory ?? null, m: args.model ?? null },
  );
}

async function submitted(args: Parameters<typeof submit>[0]): Promise<Job> {
  const r = await submit(args);
  if (!r.body.data) throw new Error(JSON.stringify(r.body.errors));
  return r.body.data.submitScreeningJob;
}

/** The job once completed, with its verdicts (one page: these jobs are small). */
async function completed(id: string): Promise<{ job: Job; verdicts: Verdict[] }> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const r = await gql<{ screeningJob: Job & { verdicts: { verdicts: Verdict[] } } }>(
      server,
      `query($id: ID!) { screeningJob(id: $id) { ${FIELDS}
         verdicts(first: 100) { verdicts { index file sha256 prediction { label } error { code message } } } } }`,
      { id },
    );
    const job = r.body.data!.screeningJob;
    if (job.status === 'COMPLETED') return { job, verdicts: job.verdicts.verdicts };
    if (Date.now() > deadline) throw new Error(`job ${id} not completed: ${JSON.stringify(job)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

/** Spooled files left (names only; a file being moved aside is not one). */
function spooled(): string[] {
  if (!fs.existsSync(spool)) return [];
  return fs
    .readdirSync(spool, { recursive: true, encoding: 'utf8' })
    .map((f) => path.basename(f))
    .filter((f) => /^[0-9a-f]{64}$/.test(f));
}

async function spoolEmptied(): Promise<string[]> {
  for (let i = 0; i < 100 && spooled().length; i++) await new Promise((r) => setTimeout(r, 100));
  return spooled();
}

const uploads = (n: number) =>
  fixtureFiles()
    .slice(0, n)
    .map((f) => ({ base64: fs.readFileSync(f).toString('base64') }));

beforeAll(async () => {
  await initBackend('wasm');
  writeJobImages(path.join(realRoot, 'set'), 6);
  fs.symlinkSync(realRoot, allowed);
  redis = await startRedis();
  await makeRgbModel(rgbDir);
  // The API replica serves both models and takes no batches itself: only workers consume.
  server = await startServer({ ...env(), ADVSIEVE_MODELS: rgbDir, ADVSIEVE_JOB_CONSUMER: 'off' });
}, 300_000);

afterAll(async () => {
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
  await server?.stop();
  await redis?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('job consumers by model', () => {
  test('with no consumer of its model running a job is refused, and nothing is spooled; an unknown model too', async () => {
    for (const model of [undefined, RGB_MODEL_ID]) {
      const r = await submit({ images: uploads(2), model });
      expect([model, errorCode(r), r.status]).toEqual([model, 'JOBS_UNAVAILABLE', 503]);
      expect(r.body.errors![0].message).toContain(model ?? 'fashion');
    }
    expect(spooled()).toEqual([]);
    expect(errorCode(await submit({ images: uploads(1), model: 'nope' }))).toBe('UNKNOWN_MODEL');
  });

  test("a worker takes its models' jobs; the uploads leave the spool once the job is done", async () => {
    await startWorker(); // the default model only
    const job = await submitted({ images: uploads(5) });
    const { job: done, verdicts } = await completed(job.id);
    expect(done).toMatchObject({ total: 5, screened: 5, failed: 0, directory: null });
    expect(verdicts.every((v) => v.prediction && !v.error)).toBe(true);
    expect(await spoolEmptied()).toEqual([]);
    // Still no consumer of the other model: refused, not queued for ever.
    expect(errorCode(await submit({ images: uploads(1), model: RGB_MODEL_ID }))).toBe('JOBS_UNAVAILABLE');
  }, 300_000);

  test('a directory job shows the directory as named, not where the allowed root leads', async () => {
    const named = path.join(allowed, 'set');
    const job = await submitted({ directory: `${allowed}/./set/` });
    expect(job.directory).toBe(named);
    const { job: done, verdicts } = await completed(job.id);
    expect(done).toMatchObject({ total: 6, screened: 6, directory: named });
    // Each file relative to the directory: nothing of the server's paths.
    expect(verdicts.map((v) => v.file)).toEqual(Array.from({ length: 6 }, (_, i) => jobImagePath(i)));
    const body = JSON.stringify(done) + JSON.stringify(verdicts);
    expect(body).not.toContain('disk3');
  }, 300_000);

  test("another model's job waits for a worker of that model and is never failed by one of another", async () => {
    // The first worker is killed: its announcement lasts a while, so an upload job is still taken.
    workers[0].kill('SIGKILL');
    const orphan = await submitted({ images: uploads(3) });
    // Its spooled files vanish before any worker reads them: the images fail, naming no server path.
    for (const f of fs.readdirSync(spool, { recursive: true, encoding: 'utf8' }))
      if (/^[0-9a-f]{64}$/.test(path.basename(f))) fs.rmSync(path.join(spool, f));
    await startWorker(['--models', rgbDir]); // the default model and the RGB one
    const lost = await completed(orphan.id);
    expect(lost.job).toMatchObject({ total: 3, screened: 0, failed: 3 });
    for (const v of lost.verdicts) {
      expect(v.error!.code).toBe('UNREADABLE_FILE');
      expect(v.error!.message).not.toContain(spool);
      expect(v.error!.message).not.toContain(os.tmpdir());
    }

    const rgb = await submitted({ images: uploads(4), model: RGB_MODEL_ID });
    const { job: done, verdicts } = await completed(rgb.id);
    expect(done).toMatchObject({ total: 4, screened: 4, failed: 0 });
    expect(verdicts.every((v) => v.prediction && !v.error)).toBe(true);
    expect(await spoolEmptied()).toEqual([]);
  }, 400_000);

  test('a batch its consumer cannot screen is given up: its images fail, coded, and the job completes', async () => {
    // Only by hand can a batch land in another model's queue; the consumer must still not hang the job.
    const store = await JobStore.open(redis.url, { batchSize: 4, ttlSeconds: 600 });
    try {
      const job = await store.submit({
        model: 'ghost',
        targetFpr: 0.05,
        top: 1,
        keyId: null,
        scopes: [],
        directory: null,
        requestedDirectory: null,
        items: ['!CORRUPT_IMAGE', '!CORRUPT_IMAGE'],
      });
      await store
        .queue(RGB_MODEL_ID)
        .add('screen', { jobId: job.id, start: 0, items: ['!CORRUPT_IMAGE', '!CORRUPT_IMAGE'] });
      const { job: done, verdicts } = await completed(job.id);
      expect(done).toMatchObject({ total: 2, screened: 0, failed: 2 });
      expect(verdicts.map((v) => v.error!.code)).toEqual(['JOB_BATCH_FAILED', 'JOB_BATCH_FAILED']);
      expect(verdicts[0].error!.message).toContain("model 'ghost'");
      await store.queue('ghost').obliterate({ force: true });
    } finally {
      await store.close();
    }
  }, 120_000);

  test('/metrics counts batches per model queue', async () => {
    const text = await (await fetch(`${server.base}/metrics`)).text();
    for (const model of ['fashion-cnn', RGB_MODEL_ID])
      expect(text).toMatch(new RegExp(`advsieve_job_batches\\{model="${model}",state="waiting"\\} 0`));
  });
});
