import { Field, Float, InputType, Int } from 'type-graphql';

@InputType({ description: 'How a job screens: `screen`’s options that suit a job (no defense images in bulk).' })
export class ScreeningJobOptions {
  @Field(() => Float, {
    nullable: true,
    description:
      'False-positive rate the thresholds are set for, as `screen`’s `targetFpr` (the same policy: a looser rate than the operator’s needs the `policy` scope).',
  })
  targetFpr?: number | null;

  @Field(() => Int, {
    nullable: true,
    description: 'Classes listed in each prediction’s `top` (default: the service’s, 3).',
  })
  top?: number | null;
}
