/**
 * A consumer of screening-job batches: a BullMQ Worker over this process's ScreeningService. Any
 * replica with REDIS_URL runs one (unless ADVSIEVE_JOB_CONSUMER=off), and `advsieve worker` is one
 * without HTTP. A batch is an engine batch of images (ADVSIEVE_JOB_BATCH); a few are screened at
 * once (ADVSIEVE_JOB_CONCURRENCY) so that the engine never waits for the next while one is read,
 * recorded and stored.
 *
 * Exactly once, as seen in the results: a batch's verdicts go to the audit log first (one row per
 * job image, a rerun's rows ignored: migration 4), then to Redis keyed by image index (a rerun
 * overwrites: src/jobs/jobStore.ts). A consumer killed mid-batch never completes it; its lock runs
 * out (ADVSIEVE_JOB_LOCK_MS) and BullMQ's stalled check hands the batch to another consumer, which
 * screens it again from the start. Nothing is acknowledged before it is stored, so nothing is lost.
 *
 * One BullMQ Worker per model this process serves, each on that model's queue: a batch is only ever
 * taken by a consumer that can screen it. The consumer announces its models in Redis while it runs
 * (ANNOUNCE_MS), which is how a replica submitting a job knows that some consumer can take it.
 */
import { randomUUID } from 'crypto';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { recordVerdicts } from '../audit/records';
import type { Scope } from '../request/context';
import { ImageFailure, type ImageErrorCode } from '../request/errors';
import { logger } from '../util/logger';
import { count, errorOf, screenImages } from '../server/operations';
import { RequestImages, type ReadImage } from '../server/requestImages';
import type { ScreeningService } from '../server/service';
import type { ScreeningModel } from '../server/screeningModel';
import { readJobFile } from './jobDirectory';
import type { JobsConfig } from './jobsConfig';
import { bullConnection, queueName, type BatchData, type JobRecord, type JobStore, type JobVerdict } from './jobStore';
import { Spool } from './spool';
import { freeSpooledFilesLater, sweepSpool, SWEEP_INTERVAL_MS } from './spoolCleanup';

/** How long a consumer's announcement of its models lasts; it is renewed at a third of that. */
const ANNOUNCE_MS = 30_000;

export class JobConsumer {
  private constructor(
    private readonly workers: readonly Worker<BatchData>[],
    private readonly store: JobStore,
    private readonly id: string,
    private readonly models: readonly string[],
    private readonly timers: readonly NodeJS.Timeout[],
  ) {}

  /** Starts taking batches; resolves once its models are announced (a job for them is accepted from then). */
  static async start(service: ScreeningService, store: JobStore, config: JobsConfig): Promise<JobConsumer> {
    const spool = new Spool(config.spoolDir);
    const workers = service.models.map((model) => modelWorker(service, store, spool, model, config));
    const id = randomUUID();
    const models = service.models.map((m) => m.id);
    const announce = () =>
      store
        .announce(id, models, ANNOUNCE_MS)
        .catch((err: Error) => logger.warn({ err }, 'job consumer: not announced'));
    const sweep = () => sweepSpool(store, spool).catch((err: Error) => logger.warn({ err }, 'job spool: sweep failed'));
    await announce();
    void sweep();
    const timers = [setInterval(announce, ANNOUNCE_MS / 3), setInterval(sweep, SWEEP_INTERVAL_MS)];
    for (const t of timers) t.unref();
    logger.info(
      { models, concurrency: workers.map((w) => w.opts.concurrency), lockMs: config.lockMs },
      `job consumer: taking screening batches of ${models.join(', ')} from Redis`,
    );
    return new JobConsumer(workers, store, id, models, timers);
  }

  /** Stops taking batches, waits for the ones being screened, and withdraws its announcement. */
  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await Promise.all(this.workers.map((w) => w.close()));
    await this.store.withdraw(this.id, this.models).catch(() => undefined);
  }
}

/** A Worker on one model's queue: a few of its batches at once, four per engine worker unless set. */
function modelWorker(
  service: ScreeningService,
  store: JobStore,
  spool: Spool,
  model: ScreeningModel,
  config: JobsConfig,
): Worker<BatchData> {
  const worker = new Worker<BatchData>(
    queueName(model.id),
    (job) => screenBatch(service, store, spool, model, job.data),
    {
      connection: bullConnection(config.redisUrl!),
      concurrency: config.concurrency ?? 4 * model.engine.pool.size,
      lockDuration: config.lockMs,
      stalledInterval: config.stalledIntervalMs,
      maxStalledCount: config.maxStalledCount,
      // Finished batches leave the queue: the job's record in Redis holds what clients read.
      removeOnComplete: { count: 0 },
      removeOnFail: { age: config.ttlSeconds },
    },
  );
  worker.on('failed', (job, err) => {
    if (job) void giveUp(service, store, spool, model, job, err);
  });
  worker.on('stalled', (id) =>
    logger.warn({ batch: id }, `job consumer: batch ${id} stalled (its consumer stopped renewing it); queued again`),
  );
  worker.on('error', (err) => logger.warn({ err }, 'job consumer: queue error'));
  return worker;
}

/** Screens one batch and stores its verdicts; a cancelled or expired job's batch is skipped. */
async function screenBatch(
  service: ScreeningService,
  store: JobStore,
  spool: Spool,
  model: ScreeningModel,
  batch: BatchData,
): Promise<void> {
  const job = await store.get(batch.jobId);
  if (!job || job.status === 'cancelled' || job.status === 'completed') return;
  // Only a batch put in the wrong queue by hand; no retry could help, so its images fail at once.
  if (job.model !== model.id)
    throw new UnrecoverableError(`its job is for model '${job.model}', not this queue's '${model.id}'`);
  const files = await Promise.all(batch.items.map((item) => readItem(service, spool, job, item)));
  const ctx = auditContext(service, job);
  const images = await ctx.images.decodeFiles(model, files);
  const results = await screenImages(ctx, model, images, { targetFpr: job.targetFpr, top: job.top });
  const verdicts = results.map((r, i) => ({
    ...r,
    index: batch.start + i,
    file: job.directory ? batch.items[i] : undefined,
    model: model.id,
  }));
  count(service, model, 'screen', verdicts);
  await record(service, store, spool, model, job, images, verdicts);
}

/**
 * The audit log first (a rerun's rows are ignored there), then the job's verdicts in Redis; the
 * job's last verdicts free its spooled uploads.
 */
async function record(
  service: ScreeningService,
  store: JobStore,
  spool: Spool,
  model: ScreeningModel,
  job: JobRecord,
  images: readonly Pick<ReadImage, 'sha256' | 'bytes'>[],
  verdicts: readonly JobVerdict[],
): Promise<void> {
  await recordVerdicts(auditContext(service, job), model, 'screen', images, verdicts);
  const done = await store.record(job.id, verdicts);
  if (done < 0) logger.warn({ job: job.id }, 'job consumer: job expired mid-batch');
  else if (done >= job.total && !job.directory) await freeSpooledFilesLater(store, spool, job.id);
}

/**
 * The context a batch is judged and audited under: its job's key, a request id per run of the
 * batch (a rerun is another run), the job's id; no deadline and no rate limit (the job's pace is
 * the consumers'), one RequestImages per batch (nothing shared between batches).
 */
function auditContext(service: ScreeningService, job: JobRecord) {
  return {
    service,
    images: new RequestImages(service),
    principal: job.keyId ? { keyId: job.keyId, scopes: new Set(job.scopes) as ReadonlySet<Scope> } : undefined,
    requestId: randomUUID(),
    deadline: Infinity,
    jobId: job.id,
  };
}

async function readItem(
  service: ScreeningService,
  spool: Spool,
  job: JobRecord,
  item: string,
): Promise<Buffer | ImageFailure> {
  if (item.startsWith('!')) return new ImageFailure(item.slice(1) as ImageErrorCode, 'the upload could not be read');
  if (job.directory) {
    const read = await readJobFile(job.directory, item, service.config.maxFileBytes);
    return Buffer.isBuffer(read) ? read : new ImageFailure(read.code, read.message);
  }
  try {
    return await spool.read(item);
  } catch (err) {
    // The code, not the message: a file system's message names the spool's absolute path.
    const why = (err as NodeJS.ErrnoException).code ?? 'does not hash to its name';
    return new ImageFailure('UNREADABLE_FILE', `spooled upload ${item.slice(0, 12)}…: ${why}`);
  }
}

/**
 * A batch that failed for good — its tries spent, or its consumers killed under it
 * ADVSIEVE_JOB_MAX_STALLED times (a batch that kills whoever screens it), or in the wrong model's
 * queue — gives each of its images a JOB_BATCH_FAILED verdict, so that the job still completes and
 * says which. The cause goes to the log, not to the verdict: an error's message may name the
 * server's paths or its database.
 */
async function giveUp(
  service: ScreeningService,
  store: JobStore,
  spool: Spool,
  model: ScreeningModel,
  batch: Job<BatchData>,
  err: Error,
): Promise<void> {
  try {
    if ((await batch.getState()) !== 'failed') return; // tries left: BullMQ runs it again
    const job = await store.get(batch.data.jobId);
    if (!job || job.status === 'cancelled' || job.status === 'completed') return;
    logger.error({ err, job: job.id, start: batch.data.start }, 'job consumer: batch given up; its images fail');
    const why =
      err instanceof UnrecoverableError
        ? err.message
        : `it failed ${batch.attemptsMade} times; the server's log says why`;
    const failure = errorOf(new ImageFailure('JOB_BATCH_FAILED', `its batch was given up: ${why}`));
    const verdicts = batch.data.items.map((_, i) => ({ index: batch.data.start + i, error: failure }));
    await record(service, store, spool, model, job, [], verdicts);
  } catch (e) {
    logger.error({ err: e, batch: batch.id }, 'job consumer: a failed batch could not be recorded');
  }
}
