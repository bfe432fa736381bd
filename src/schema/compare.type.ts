import { Field, Float, Int, ObjectType } from 'type-graphql';
import { ClassActivationMap } from './explain.type';
import { ImageError } from './image-error.type';
import { Prediction } from './prediction.type';
import { SpectrumResult } from './spectrum.type';
import { TrajectoryStep } from './trajectory.type';

@ObjectType({ description: 'One image of a compared pair, as the model saw it.' })
export class ComparedImage {
  @Field(() => String, { nullable: true })
  sha256?: string;

  @Field(() => Prediction, { nullable: true })
  prediction?: Prediction;

  @Field(() => ClassActivationMap, { nullable: true, description: 'Grad-CAM for its predicted class.' })
  cam?: ClassActivationMap;

  @Field(() => [TrajectoryStep], { nullable: true, description: 'Its feature trajectory, input side first.' })
  trajectory?: TrajectoryStep[];

  @Field(() => ImageError, { nullable: true })
  error?: ImageError;
}

@ObjectType({ description: 'The difference between the suspect and the clean image, in the model’s input space.' })
export class Perturbation {
  @Field(() => Float)
  linf!: number;

  @Field(() => Float)
  l2!: number;

  @Field(() => Float, {
    description: 'How much the PNG amplifies it: mid-grey is 0, white and black ±(1 / amplification).',
  })
  amplification!: number;

  @Field(() => String, { description: 'The perturbation, amplified to the full range around mid-grey (base64 PNG).' })
  image!: string;
}

@ObjectType({
  description:
    'Promotion–suppression: did the perturbation mostly lower the clean class’s logit (suppression), raise the new class’s (promotion), or both (balanced)?',
})
export class PromotionSuppression {
  @Field(() => String, {
    description: 'suppression, promotion or balanced (drop’s share of drop + rise ≥ 2/3, ≤ 1/3, between).',
  })
  type!: string;

  @Field(() => Int, { description: 'The clean image’s predicted class.' })
  originClass!: number;

  @Field(() => Int, { description: 'The suspect image’s predicted class.' })
  targetClass!: number;

  @Field(() => Float, { description: 'How far the origin class’s logit fell.' })
  drop!: number;

  @Field(() => Float, { description: 'How far the target class’s logit rose.' })
  rise!: number;
}

@ObjectType({
  description:
    'An original and a suspected adversarial version of it side by side: the perturbation, its spectrum, promotion–suppression, Grad-CAM and the trajectory of both.',
})
export class CompareResult {
  @Field(() => String, { nullable: true })
  model?: string;

  @Field(() => ComparedImage)
  clean!: ComparedImage;

  @Field(() => ComparedImage)
  suspect!: ComparedImage;

  @Field(() => Perturbation, { nullable: true })
  perturbation?: Perturbation;

  @Field(() => SpectrumResult, {
    nullable: true,
    description:
      'The perturbation’s power spectrum, the sieve’s cut-off drawn: adversarial perturbations sit above it.',
  })
  perturbationSpectrum?: SpectrumResult;

  @Field(() => PromotionSuppression, { nullable: true, description: 'Only when the predictions differ.' })
  promotionSuppression?: PromotionSuppression;
}
