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
 */
import { randomUUID } from 'crypto';
import { Worker, type Job } from 'bullmq';
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
import { bullConnection, JOB_QUEUE, type BatchData, type JobRecord, type JobStore, type JobVerdict } from './jobStore';
import { Spool } from './spool';

export class JobConsumer {
  private constructor(private readonly worker: Worker<BatchData>) {}

  static start(service: ScreeningService, store: JobStore, config: JobsConfig): JobConsumer {
    const spool = new Spool(config.spoolDir);
    const workers = service.defaultModel.engine.pool.size;
    const worker = new Worker<BatchData>(JOB_QUEUE, (job) => screenBatch(service, store, spool, job.data), {
      connection: bullConnection(config.redisUrl!),
      concurrency: config.concurrency ?? 4 * workers,
      lockDuration: config.lockMs,
      stalledInterval: config.stalledIntervalMs,
      maxStalledCount: config.maxStalledCount,
      // Finished batches leave the queue: the job's record in Redis holds what clients read.
      removeOnComplete: { count: 0 },
      removeOnFail: { age: config.ttlSeconds },
    });
    worker.on('failed', (job, err) => {
      if (job) void giveUp(service, store, job, err);
    });
    worker.on('stalled', (id) =>
      logger.warn({ batch: id }, `job consumer: batch ${id} stalled (its consumer stopped renewing it); queued again`),
    );
    worker.on('error', (err) => logger.warn({ err }, 'job consumer: queue error'));
    logger.info(
      { concurrency: worker.opts.concurrency, lockMs: config.lockMs },
      `job consumer: taking screening batches from Redis (${worker.opts.concurrency} at once)`,
    );
    return new JobConsumer(worker);
  }

  /** Stops taking batches and waits for the ones being screened. */
  async close(): Promise<void> {
    await this.worker.close();
  }
}

/** Screens one batch and stores its verdicts; a cancelled or expired job's batch is skipped. */
async function screenBatch(service: ScreeningService, store: JobStore, spool: Spool, batch: BatchData): Promise<void> {
  const job = await store.get(batch.jobId);
  if (!job || job.status === 'cancelled' || job.status === 'completed') return;
  const model = service.model(job.model);
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
  await record(service, store, model, job, images, verdicts);
}

/** The audit log first (a rerun's rows are ignored there), then the job's verdicts in Redis. */
async function record(
  service: ScreeningService,
  store: JobStore,
  model: ScreeningModel,
  job: JobRecord,
  images: readonly Pick<ReadImage, 'sha256' | 'bytes'>[],
  verdicts: readonly JobVerdict[],
): Promise<void> {
  await recordVerdicts(auditContext(service, job), model, 'screen', images, verdicts);
  if ((await store.record(job.id, verdicts)) < 0) logger.warn({ job: job.id }, 'job consumer: job expired mid-batch');
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
    return new ImageFailure('UNREADABLE_FILE', `spooled upload ${item.slice(0, 12)}…: ${(err as Error).message}`);
  }
}

/**
 * A batch that failed for good — its tries spent, or its consumers killed under it
 * ADVSIEVE_JOB_MAX_STALLED times (a batch that kills whoever screens it) — gives each of its
 * images a JOB_BATCH_FAILED verdict, so that the job still completes and says which.
 */
async function giveUp(service: ScreeningService, store: JobStore, batch: Job<BatchData>, err: Error): Promise<void> {
  try {
    if ((await batch.getState()) !== 'failed') return; // tries left: BullMQ runs it again
    const job = await store.get(batch.data.jobId);
    if (!job || job.status === 'cancelled' || job.status === 'completed') return;
    logger.error({ err, job: job.id, start: batch.data.start }, 'job consumer: batch given up; its images fail');
    const failure = errorOf(new ImageFailure('JOB_BATCH_FAILED', `its batch failed: ${err.message}`));
    const verdicts = batch.data.items.map((_, i) => ({ index: batch.data.start + i, error: failure }));
    await record(service, store, service.model(job.model), job, [], verdicts);
  } catch (e) {
    logger.error({ err: e, batch: batch.id }, 'job consumer: a failed batch could not be recorded');
  }
}
