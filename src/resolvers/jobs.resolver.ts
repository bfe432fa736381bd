import { Arg, Authorized, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { ImageInput } from '../schema/image.input';
import { ModelArg } from '../schema/model.arg';
import { ScreeningJobOptions } from '../schema/screening-job-options.input';
import { ScreeningJob, ScreeningJobVerdictPage } from '../schema/screening-job.type';
import {
  cancelScreeningJob,
  JOB_VERDICTS_DEFAULT_FIRST,
  jobVerdicts,
  screeningJob,
  submitScreeningJob,
} from '../server/jobs';
import type { ApiContext } from '../server/operations';

@Resolver(() => ScreeningJob)
export class JobsResolver {
  @Authorized('jobs')
  @Mutation(() => ScreeningJob, {
    description:
      'Queues a bulk screening job (the `jobs` scope; needs REDIS_URL, else JOBS_UNAVAILABLE): either uploaded `images` (multipart or base64, as `screen`’s) or a server-side `directory` under one the operator allowed (ADVSIEVE_JOB_DIRS; else JOB_DIRECTORY_NOT_ALLOWED), every file under it. Consumers screen it in engine-sized batches; read it with `screeningJob`.',
  })
  submitScreeningJob(
    @Arg('images', () => [ImageInput], { nullable: true }) images: ImageInput[] | null,
    @Arg('directory', () => String, {
      nullable: true,
      description: 'An absolute path on the server, under one of ADVSIEVE_JOB_DIRS; give it or `images`.',
    })
    directory: string | null,
    @Arg('options', () => ScreeningJobOptions, { nullable: true }) options: ScreeningJobOptions | null,
    @ModelArg() model: string | null,
    @Ctx() ctx: ApiContext,
  ): Promise<ScreeningJob> {
    return submitScreeningJob(ctx, images, directory, options, model);
  }

  @Authorized('jobs')
  @Query(() => ScreeningJob, {
    description:
      'A job’s status, counts and verdicts (the `jobs` scope; a key sees its own jobs, `admin` every one). JOB_NOT_FOUND when unknown or expired.',
  })
  screeningJob(@Arg('id', () => ID) id: string, @Ctx() ctx: ApiContext): Promise<ScreeningJob> {
    return screeningJob(ctx, id);
  }

  @Authorized('jobs')
  @Mutation(() => ScreeningJob, {
    description:
      'Cancels a queued or running job: its batches not yet screened are skipped. A finished job is returned as it is.',
  })
  cancelScreeningJob(@Arg('id', () => ID) id: string, @Ctx() ctx: ApiContext): Promise<ScreeningJob> {
    return cancelScreeningJob(ctx, id);
  }

  @FieldResolver(() => ScreeningJobVerdictPage, { description: 'The verdicts, a page at a time, in image order.' })
  verdicts(
    @Root() job: ScreeningJob,
    @Arg('first', () => Int, {
      defaultValue: JOB_VERDICTS_DEFAULT_FIRST,
      description: 'Images per page, in [1, 1000].',
    })
    first: number,
    @Arg('after', () => String, { nullable: true, description: 'The previous page’s `endCursor`.' })
    after: string | null,
    @Ctx() ctx: ApiContext,
  ): Promise<ScreeningJobVerdictPage> {
    return jobVerdicts(ctx, job, first, after);
  }
}
