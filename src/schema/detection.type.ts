import { Field, Float, ObjectType } from 'type-graphql';

@ObjectType({ description: 'One detector’s score against its threshold at the request’s false-positive rate.' })
export class DetectorScore {
  @Field(() => String, {
    description:
      'highFrequency, activationDistance, mahalanobis, density, lowPassDisagreement, and the optional deepKnn, boundaryMargin and channelMahalanobis:<conv layer> (one per conv layer) (present only when the calibration fitted them: `calibrate --deep-knn`, `--boundary-margin`, `--channel-mahalanobis`).',
  })
  name!: string;

  @Field(() => Float)
  score!: number;

  @Field(() => Float, { description: 'Score above which the detector flags the image.' })
  threshold!: number;

  @Field(() => Boolean)
  flagged!: boolean;
}

@ObjectType({
  description: 'Whether an image looks adversarial: the combined verdict and every detector’s part in it.',
})
export class Detection {
  @Field(() => Boolean, { description: 'The combined score is above its threshold.' })
  adversarial!: boolean;

  @Field(() => Float, {
    description:
      'The combined score: a logistic regression over the detectors’ scores, or where calibration gave one detector a term of its own (calibration.json `combined.union`), the larger of the two.',
  })
  score!: number;

  @Field(() => Float)
  threshold!: number;

  @Field(() => Float, { description: 'False-positive rate on clean hold-out images that the thresholds were read at.' })
  targetFpr!: number;

  @Field(() => [DetectorScore])
  detectors!: DetectorScore[];
}
