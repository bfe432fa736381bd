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
import { allowedDirectory, JobDirectoryError, listImages } from '../jobs/jobDirectory';
import type { JobRecord, JobStore } from '../jobs/jobStore';
import { Spool } from '../jobs/spool';
import type { ImageInput } from '../schema/image.input';
import type { ScreeningJob, ScreeningJobVerdict, ScreeningJobVerdictPage } from '../schema/screening-job.type';
import type { ScreeningJobOptions } from '../schema/screening-job-options.input';
import {
  badUserInput,
  ImageFailure,
  jobDirectoryNotAllowed,
  jobNotFound,
  jobsUnavailable,
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

function view(job: JobRecord): ScreeningJob {
  const done = job.screened + job.failed;
  return { ...job, progress: job.total === 0 ? 1 : Math.min(1, done / job.total) };
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
  let items: string[];
  let real: string | null = null;
  if (directory != null) {
    real = await checkedDirectory(directory, config.dirs);
    items = await listImages(real, config.maxImages);
  } else {
    const files = await ctx.images.files(model, images!, 'images', TOKENS_PER_IMAGE.submitScreeningJob);
    const spool = new Spool(config.spoolDir);
    items = await Promise.all(files.map((f) => (f instanceof ImageFailure ? `!${f.code}` : spool.put(f))));
  }
  if (items.length > config.maxImages)
    throw payloadTooLarge(`the job has more than ${config.maxImages} images (ADVSIEVE_JOB_MAX_IMAGES)`, {
      name: 'jobMaxImages',
      value: config.maxImages,
    });
  const job = await store.submit({
    model: model.id,
    targetFpr,
    top,
    keyId: principal?.keyId ?? null,
    scopes: principal ? [...principal.scopes] : [],
    directory: real,
    items,
  });
  return view(job);
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
  await visibleJob(ctx, store, id);
  await store.cancel(id);
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
