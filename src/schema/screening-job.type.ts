import { GraphQLDateTime } from 'graphql-scalars';
import { Field, Float, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { ScreenResult } from './screen-result.type';

/** A job's state; GraphQL names in capitals, the values as stored in Redis (src/jobs/jobStore.ts). */
export const ScreeningJobStatus = {
  QUEUED: 'queued',
  RUNNING: 'running',
  COMPLETED: 'completed',
  CANCELLED: 'cancelled',
} as const;

registerEnumType(ScreeningJobStatus, {
  name: 'ScreeningJobStatus',
  description:
    'QUEUED: no image judged yet; RUNNING: some; COMPLETED: every image has a verdict or an error; CANCELLED: stopped by cancelScreeningJob (batches being screened then still finish).',
});

@ObjectType({
  description: 'One image of a job: `screen`’s result for it (`index`: its place in the job), and its file.',
})
export class ScreeningJobVerdict extends ScreenResult {
  @Field(() => String, {
    nullable: true,
    description: 'For a directory job, the file’s path relative to the directory; null for uploaded images.',
  })
  file?: string | null;
}

@ObjectType({ description: 'A page of a job’s verdicts, in image order.' })
export class ScreeningJobVerdictPage {
  @Field(() => [ScreeningJobVerdict], {
    description:
      'The verdicts of the page’s images that have one: a page covers `first` positions of the job’s images, and those not judged yet are left out.',
  })
  verdicts!: ScreeningJobVerdict[];

  @Field(() => String, { nullable: true, description: 'Pass as `after` for the next page; null after the last.' })
  endCursor!: string | null;

  @Field(() => Boolean)
  hasNextPage!: boolean;
}

@ObjectType({ description: 'A bulk screening job (docs/api.md, "Jobs"): its state, counts and verdicts.' })
export class ScreeningJob {
  @Field(() => ID)
  id!: string;

  @Field(() => ScreeningJobStatus)
  status!: (typeof ScreeningJobStatus)[keyof typeof ScreeningJobStatus];

  @Field(() => String, { description: 'Id of the model that screens it.' })
  model!: string;

  @Field(() => Float, { description: 'The false-positive rate its thresholds are read at.' })
  targetFpr!: number;

  @Field(() => String, {
    nullable: true,
    description:
      'The server-side directory screened, as the job named it (absolute, normalised; not where links in it lead); null for uploaded images.',
  })
  directory!: string | null;

  @Field(() => Int, { description: 'Images in the job.' })
  total!: number;

  @Field(() => Int, { description: 'Images judged (clean or flagged).' })
  screened!: number;

  @Field(() => Int, { description: 'Of the judged images, those flagged adversarial.' })
  flagged!: number;

  @Field(() => Int, { description: 'Images that could not be screened (each verdict has its `error`).' })
  failed!: number;

  @Field(() => Float, { description: '(screened + failed) / total, in [0, 1]; 1 for a job of no images.' })
  progress!: number;

  @Field(() => GraphQLDateTime)
  createdAt!: Date;

  @Field(() => GraphQLDateTime, { nullable: true, description: 'When it completed or was cancelled.' })
  finishedAt!: Date | null;
}
