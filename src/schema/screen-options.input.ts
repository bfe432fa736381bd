import { Field, Float, InputType, Int } from 'type-graphql';

@InputType({ description: 'How `screen` answers.' })
export class ScreenOptions {
  @Field(() => Boolean, {
    nullable: true,
    description: 'Also report the prediction after the low-pass defense (`defense`).',
  })
  defend?: boolean | null;

  @Field(() => Boolean, {
    nullable: true,
    description: 'With `defend`: also return the low-passed ("purified") image as a base64 PNG.',
  })
  returnPurifiedImage?: boolean | null;

  @Field(() => Float, {
    nullable: true,
    description:
      'False-positive rate on clean images that the thresholds are set for, in (0, 1); default: the service’s (the calibration’s unless configured).',
  })
  targetFpr?: number | null;

  @Field(() => Int, {
    nullable: true,
    description: 'Classes listed in each prediction’s `top` (default: the service’s, 3).',
  })
  top?: number | null;
}
