/**
 * `npm run bench:jobs`: a screening job's images/s against the engine's screening images/s, in one
 * process on this machine. The engine's figure: the job's images, decoded in advance, through
 * engine.infer and the screener, by enough callers to keep every worker busy — screening and
 * nothing else. The job's figure: BENCH_JOB_IMAGES (default 20 000) distinct 28×28 PNGs in a
 * directory, submitted as a job and screened by this process's consumer, from the submission to
 * the last verdict stored — listing, queueing, reading the files, decoding, screening, the audit
 * log (SQLite, ADVSIEVE_AUDIT_SYNC=full as by default) and the verdicts in Redis included. Redis is
 * Debian's redis-server, started on a free port (no persistence), or REDIS_URL's. The goal: the job
 * at ≥ 0.9 × the engine. The two are measured in turn, BENCH_ROUNDS times (default 2), and each
 * figure is the best of its rounds: on a machine shared with other work, the least disturbed run
 * is the one that says what the code costs. Last line: one JSON object.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { listImages } from '../jobs/jobDirectory';
import { openJobs } from '../jobs/openJobs';
import type { JobStore } from '../jobs/jobStore';
import type { ScreeningModel } from '../server/screeningModel';
import { decodeSmallPlainPng } from '../images/decode';
import { Metrics } from '../request/metrics';
import { configFromEnv } from '../server/config';
import { ScreeningService } from '../server/service';
import { jobImagePath, writeJobImages } from './jobImages';
import { printTable } from './measure';
import { RedisServer, startRedis } from './redisServer';

const IMAGES = Number(process.env.BENCH_JOB_IMAGES ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);

/** The engine's screening images/s over the same images, decoded in advance; 16 callers of 64. */
async function engineRate(service: ScreeningService, dir: string): Promise<number> {
  const model = service.defaultModel;
  const pixels = Array.from({ length: Math.min(IMAGES, 4096) }, (_, i) => {
    const decoded = decodeSmallPlainPng(fs.readFileSync(path.join(dir, jobImagePath(i))), model.metadata.inputShape);
    return decoded!.views[0].pixels;
  });
  const targetFpr = model.defaultTargetFpr;
  const screenAll = async (from: number, count: number) => {
    const outs = await Promise.all(model.engine.infer(pixels.slice(from, from + count)));
    for (const out of outs) model.screener.screen(out, { targetFpr, top: 3 });
  };
  await screenAll(0, 256); // warm-up
  const start = performance.now();
  let done = 0;
  let next = 0;
  const caller = async () => {
    while (done + 64 <= IMAGES) {
      const from = next;
      next = (next + 64) % (pixels.length - 63);
      done += 64;
      await screenAll(from, 64);
    }
  };
  await Promise.all(Array.from({ length: 16 }, caller));
  return done / ((performance.now() - start) / 1000);
}

/** One job of every image under `dir`, from its listing to its last verdict stored. */
async function jobRun(store: JobStore, model: ScreeningModel, dir: string) {
  const start = performance.now();
  const items = await listImages(dir, IMAGES);
  const submitted = await store.submit({
    model: model.id,
    targetFpr: model.defaultTargetFpr,
    top: 3,
    keyId: null,
    scopes: [],
    directory: dir,
    requestedDirectory: dir,
    items,
  });
  const queued = (performance.now() - start) / 1000;
  let job = submitted;
  while (job.status !== 'completed') {
    await new Promise((r) => setTimeout(r, 50));
    job = (await store.get(submitted.id))!;
  }
  const seconds = (performance.now() - start) / 1000;
  return { rate: IMAGES / seconds, seconds, queued, id: job.id, failed: job.failed };
}

async function main(): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-bench-jobs-'));
  const dir = path.join(tmp, 'images');
  let redis: RedisServer | undefined;
  const t = performance.now();
  writeJobImages(dir, IMAGES);
  process.stdout.write(`${IMAGES} images written in ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
  try {
    const url = process.env.REDIS_URL || (redis = await startRedis()).url;
    const env = configFromEnv({ ...process.env, REDIS_URL: url, ADVSIEVE_JOB_DIRS: tmp });
    const config = { ...env, audit: { ...env.audit, sqliteFile: path.join(tmp, 'audit.sqlite') } };
    const service = await ScreeningService.start(config, new Metrics());
    const jobs = (await openJobs(service, true))!;
    try {
      const model = service.defaultModel;
      const engineRates: number[] = [];
      const jobRuns: Array<{ rate: number; seconds: number; queued: number; id: string; failed: number }> = [];
      for (let round = 0; round < ROUNDS; round++) {
        engineRates.push(await engineRate(service, dir));
        jobRuns.push(await jobRun(jobs.store, model, dir));
        const last = jobRuns[jobRuns.length - 1];
        process.stdout.write(
          `round ${round + 1}: engine ${engineRates[round].toFixed(0)} images/s, job ${last.rate.toFixed(0)} images/s (${last.seconds.toFixed(1)} s)\n`,
        );
      }
      const engine = Math.max(...engineRates);
      const best = jobRuns.reduce((a, b) => (b.rate > a.rate ? b : a));
      const memory = Number((await jobs.store.redis.memory('USAGE', `advsieve:job:${best.id}:verdicts`)) ?? 0);
      const figures = {
        images: IMAGES,
        rounds: ROUNDS,
        workers: model.engine.pool.size,
        engineImagesPerSecond: Math.round(engine),
        jobImagesPerSecond: Math.round(best.rate),
        ratio: Number((best.rate / engine).toFixed(3)),
        jobSeconds: Number(best.seconds.toFixed(1)),
        listAndQueueSeconds: Number(best.queued.toFixed(2)),
        failed: best.failed,
        engineRuns: engineRates.map(Math.round),
        jobRuns: jobRuns.map((r) => Math.round(r.rate)),
        redisBytesPerVerdict: Math.round(memory / IMAGES),
        cores: os.availableParallelism(),
      };
      printTable('bench:jobs', [
        ['engine screening (decoded images, 16 callers)', `${figures.engineImagesPerSecond} img/s`],
        [`job of ${IMAGES} images (directory → verdicts in Redis)`, `${figures.jobImagesPerSecond} img/s`],
        ['job / engine', `${figures.ratio}`],
        ['listing and queueing', `${figures.listAndQueueSeconds} s`],
        ['rounds (engine / job img/s)', `${figures.engineRuns.join(', ')} / ${figures.jobRuns.join(', ')}`],
        ['Redis memory per stored verdict', `${figures.redisBytesPerVerdict} bytes`],
      ]);
      process.stdout.write(JSON.stringify(figures) + '\n');
    } finally {
      await jobs.close();
      await service.close();
    }
  } finally {
    await redis?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  process.stderr.write(`bench:jobs: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
