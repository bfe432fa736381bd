/**
 * What the job fields do (src/resolvers/jobs.resolver.ts maps arguments to these): submit a job of
 * uploads (spooled by SHA-256: src/jobs/spool.ts) or of a server-side directory (an allowed one:
 * src/jobs/jobDirectory.ts), read one with its verdicts a page at a time, cancel one. Screening is
 * the consumers' (src/jobs/jobConsumer.ts). Without REDIS_URL every field answers JOBS_UNAVAILABLE.
 *
 * Cost: uploaded images are charged like `screen`'s (one token an image, times the model's factor)
 * when they are read, as they pass through the same reading; a directory job is charged only the
 * request. A job is bounded instead by ADVSIEVE_JOB_MAX_IMAGES, runs at the consumers' pace and
 * never in a request's time: the token bucket (a burst of 512) meters interactive requests and
 * could never admit a job of 20 000 images at once.
 */
import * as path from 'path';
import { allowedDirectory, JobDirectoryError, listImages } from '../jobs/jobDirectory';
import type { JobRecord, JobStore } from '../jobs/jobStore';
import { Spool } from '../jobs/spool';
import { freeSpooledFilesLater } from '../jobs/spoolCleanup';
import type { ImageInput } from '../schema/image.input';
import type { ScreeningJob, ScreeningJobVerdict, ScreeningJobVerdictPage } from '../schema/screening-job.type';
import type { ScreeningJobOptions } from '../schema/screening-job-options.input';
import {
  badUserInput,
  ImageFailure,
  jobDirectoryNotAllowed,
  jobNotFound,
  jobsUnavailable,
  noJobConsumer,
  payloadTooLarge,
} from '../request/errors';
import { TOKENS_PER_IMAGE } from '../request/fieldCosts';
import { checkTop, type ApiContext } from './operations';
import { targetFprFor } from './thresholdPolicy';

export const JOB_VERDICTS_DEFAULT_FIRST = 100;
const JOB_VERDICTS_MAX_FIRST = 1000;

function storeOf(ctx: ApiContext): JobStore {
  if (!ctx.jobs) throw jobsUnavailable();
  return ctx.jobs;
}

/** What a client is shown: the directory as it named it, never where the server resolved it to. */
function view(job: JobRecord): ScreeningJob {
  const done = job.screened + job.failed;
  return { ...job, directory: job.requestedDirectory, progress: job.total === 0 ? 1 : Math.min(1, done / job.total) };
}

/** The job, if the caller may see it: its own key's, or any with `admin`, or any without keys. */
async function visibleJob(ctx: ApiContext, store: JobStore, id: string): Promise<JobRecord> {
  const job = await store.get(id);
  const p = ctx.principal;
  if (!job || (p && job.keyId !== p.keyId && !p.scopes.has('admin'))) throw jobNotFound(id);
  return job;
}

export async function submitScreeningJob(
  ctx: ApiContext,
  images: readonly ImageInput[] | null,
  directory: string | null,
  options: ScreeningJobOptions | null,
  modelId: string | null,
): Promise<ScreeningJob> {
  const store = storeOf(ctx);
  const { service, principal } = ctx;
  if ((images == null) === (directory == null))
    throw badUserInput('give exactly one of `images` and `directory`', images == null ? 'images' : 'directory');
  const model = service.model(modelId);
  const targetFpr = targetFprFor(model.thresholdPolicy, principal, options?.targetFpr);
  const top = checkTop(service, model, options?.top);
  const config = service.config.jobs;
  // Before anything is spooled: with no consumer of this model running, the job would wait for one.
  if ((await store.consumersOf(model.id)) === 0) throw noJobConsumer(model.id);
  let items: string[];
  let real: string | null = null;
  let uploads: Buffer[] = [];
  if (directory != null) {
    real = await checkedDirectory(directory, config.dirs);
    items = await listedImages(real, config.maxImages);
  } else {
    const files = await ctx.images.files(model, images!, 'images', TOKENS_PER_IMAGE.submitScreeningJob);
    uploads = files.filter((f): f is Buffer => !(f instanceof ImageFailure));
    items = files.map((f) => (f instanceof ImageFailure ? `!${f.code}` : Spool.nameOf(f)));
  }
  if (items.length > config.maxImages)
    throw payloadTooLarge(`the job has more than ${config.maxImages} images (ADVSIEVE_JOB_MAX_IMAGES)`, {
      name: 'jobMaxImages',
      value: config.maxImages,
    });
  const spool = new Spool(config.spoolDir);
  const job = await store.submit(
    {
      model: model.id,
      targetFpr,
      top,
      keyId: principal?.keyId ?? null,
      scopes: principal ? [...principal.scopes] : [],
      directory: real,
      requestedDirectory: directory == null ? null : path.resolve(directory),
      items,
      spooled: directory == null ? [...new Set(items.filter((i) => !i.startsWith('!')))] : [],
    },
    () => Promise.all(uploads.map((bytes) => spool.put(bytes))),
  );
  return view(job);
}

/**
 * The directory's files; a subdirectory that cannot be read refuses the job, named relative to the
 * directory (the file system's message would give the server's absolute path).
 */
async function listedImages(real: string, max: number): Promise<string[]> {
  try {
    return await listImages(real, max);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const where = e.path ? path.relative(real, e.path) || '.' : '.';
    throw badUserInput(`directory: '${where}' under it could not be listed (${e.code ?? 'unreadable'})`, 'directory');
  }
}

async function checkedDirectory(directory: string, roots: readonly string[]): Promise<string> {
  try {
    return await allowedDirectory(directory, roots);
  } catch (err) {
    if (!(err instanceof JobDirectoryError)) throw err;
    throw err.reason === 'not-allowed' ? jobDirectoryNotAllowed(err.message) : badUserInput(err.message, 'directory');
  }
}

export async function screeningJob(ctx: ApiContext, id: string): Promise<ScreeningJob> {
  const store = storeOf(ctx);
  return view(await visibleJob(ctx, store, id));
}

export async function cancelScreeningJob(ctx: ApiContext, id: string): Promise<ScreeningJob> {
  const store = storeOf(ctx);
  const job = await visibleJob(ctx, store, id);
  if ((await store.cancel(id)) === 'cancelled' && !job.directory)
    await freeSpooledFilesLater(store, new Spool(ctx.service.config.jobs.spoolDir), id);
  return view((await store.get(id))!);
}

/** Positions [after, after + first) of the job's images; a cursor is the next position, in decimal. */
export async function jobVerdicts(
  ctx: ApiContext,
  job: ScreeningJob,
  first: number,
  after: string | null,
): Promise<ScreeningJobVerdictPage> {
  if (!(Number.isInteger(first) && first >= 1 && first <= JOB_VERDICTS_MAX_FIRST))
    throw badUserInput(`first must be an integer in [1, ${JOB_VERDICTS_MAX_FIRST}], got ${first}`, 'first');
  const from = after == null ? 0 : Number(after);
  if (after != null && !(/^\d{1,10}$/.test(after) && from <= job.total))
    throw badUserInput('after: not a cursor of this job’s verdicts (pass a page’s endCursor)', 'after');
  const to = Math.min(job.total, from + first);
  const verdicts = (await storeOf(ctx).verdicts(job.id, from, to - from)) as unknown as ScreeningJobVerdict[];
  return { verdicts, endCursor: to < job.total ? String(to) : null, hasNextPage: to < job.total };
}
