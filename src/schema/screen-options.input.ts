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
      'False-positive rate on clean images that the thresholds are set for; default and floor: the operator’s (ADVSIEVE_TARGET_FPR, else the calibration’s). A client may ask for a higher (stricter) rate up to ADVSIEVE_MAX_TARGET_FPR (0.5); a lower one needs the `policy` scope. Out of range: BAD_USER_INPUT.',
  })
  targetFpr?: number | null;

  @Field(() => Int, {
    nullable: true,
    description: 'Classes listed in each prediction’s `top` (default: the service’s, 3).',
  })
  top?: number | null;
}
