import { GraphQLDateTime } from 'graphql-scalars';
import { Field, Float, ID, Int, ObjectType } from 'type-graphql';
import { DetectorScore } from './detection.type';

@ObjectType({ description: 'A class and its probability, as the audit log keeps a prediction.' })
export class ScreeningPrediction {
  @Field(() => Int)
  classIndex!: number;

  @Field(() => String)
  label!: string;

  @Field(() => Float, { description: 'Probability of the class.' })
  confidence!: number;
}

@ObjectType({
  description:
    'One verdict from the audit log, as recorded before it was sent: who asked, which image, what every detector said, with which model and calibration. An image that could not be screened has its `errorCode` and no verdict.',
})
export class Screening {
  @Field(() => ID, { description: 'The record’s id; ids grow with time.' })
  id!: string;

  @Field(() => GraphQLDateTime, { description: 'When the verdict was made.' })
  time!: Date;

  @Field(() => String, {
    description: 'The request’s id, made by the service (a UUID; the `x-request-id` response header).',
  })
  requestId!: string;

  @Field(() => String, {
    nullable: true,
    description: 'The client’s own `x-request-id`, as it sent it; null when it sent none (or not a sane one).',
  })
  clientRequestId?: string | null;

  @Field(() => String, { nullable: true, description: 'The API key’s id; null when the service has no keys.' })
  keyId?: string | null;

  @Field(() => String, {
    description:
      'The field that gave the answer: `screen`; `attack` for the screening of an adversarial image the attack made; `classify`, `defend`, `spectrum` or `trajectory` for the unscreened oracles (no detection fields).',
  })
  operation!: string;

  @Field(() => Int, { description: 'Position of the image in the request’s list (in a job’s, for a job’s verdict).' })
  index!: number;

  @Field(() => String, {
    nullable: true,
    description: 'The screening job the verdict belongs to (`submitScreeningJob`); null for a request’s own images.',
  })
  jobId?: string | null;

  @Field(() => String, { nullable: true, description: 'SHA-256 (hex) of the image file’s bytes.' })
  sha256?: string | null;

  @Field(() => Int, { nullable: true, description: 'Size of the image file in bytes.' })
  byteSize?: number | null;

  @Field(() => ScreeningPrediction, { nullable: true })
  prediction?: ScreeningPrediction | null;

  @Field(() => Boolean, { nullable: true, description: 'The combined verdict: the image was flagged as adversarial.' })
  adversarial?: boolean | null;

  @Field(() => Float, { nullable: true, description: 'The combined score.' })
  score?: number | null;

  @Field(() => Float, { nullable: true, description: 'The combined score’s threshold.' })
  threshold?: number | null;

  @Field(() => Float, { nullable: true, description: 'False-positive rate the thresholds were read at.' })
  targetFpr?: number | null;

  @Field(() => [DetectorScore], { nullable: true })
  detectors?: DetectorScore[] | null;

  @Field(() => ScreeningPrediction, {
    nullable: true,
    description: 'The low-pass defense’s prediction, when the request asked for it.',
  })
  defensePrediction?: ScreeningPrediction | null;

  @Field(() => String, { nullable: true, description: 'The image’s error code when it could not be screened.' })
  errorCode?: string | null;

  @Field(() => String)
  modelId!: string;

  @Field(() => String)
  modelSha256!: string;

  @Field(() => String, { description: 'SHA-256 of the calibration file the thresholds came from.' })
  calibrationSha256!: string;

  @Field(() => String, { description: 'When that calibration was made.' })
  calibrationCreatedAt!: string;

  @Field(() => String, {
    nullable: true,
    description: 'The image file (base64), when the service stores images (ADVSIEVE_AUDIT_STORE_IMAGES=1).',
  })
  image?: string | null;
}
