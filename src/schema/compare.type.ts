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

const TYPE_RULE =
  'suppression, promotion or balanced: the drop’s share of drop⁺ + rise⁺ (positive parts) is ≥ 2/3, ≤ 1/3, or between (neither positive: balanced).';

@ObjectType({
  description:
    'Promotion–suppression at one activation layer the detectors read: the units that tell the two classes apart by their clean class expectations (calibration) — the origin class’s where its expectation exceeds the target’s most, the target’s where it is the other way round, at most 5 % of the layer’s units each, at least one — and how their mean activation moved from the clean image to the suspect. A conv layer’s units are its channels’ means and spreads.',
})
export class LayerPromotionSuppression {
  @Field(() => String)
  layer!: string;

  @Field(() => String, { description: TYPE_RULE })
  type!: string;

  @Field(() => Float, { description: 'How far the mean activation of the origin class’s units fell.' })
  drop!: number;

  @Field(() => Float, { description: 'How far the mean activation of the target class’s units rose.' })
  rise!: number;

  @Field(() => [Int], { description: 'The origin class’s units (indices into the layer’s features).' })
  trueUnits!: number[];

  @Field(() => [Int], { description: 'The target class’s units.' })
  adversarialUnits!: number[];
}

@ObjectType({
  description:
    'Promotion–suppression: did the perturbation mostly lower the clean class’s logit (suppression), raise the new class’s (promotion), or both (balanced)? — and, per layer, the same for the units of the two classes.',
})
export class PromotionSuppression {
  @Field(() => String, { description: TYPE_RULE })
  type!: string;

  @Field(() => Int, { description: 'The clean image’s predicted class.' })
  originClass!: number;

  @Field(() => Int, { description: 'The suspect image’s predicted class.' })
  targetClass!: number;

  @Field(() => Float, { description: 'How far the origin class’s logit fell.' })
  drop!: number;

  @Field(() => Float, { description: 'How far the target class’s logit rose.' })
  rise!: number;

  @Field(() => [LayerPromotionSuppression], {
    description: 'The same typing per activation layer the detectors read, input side first.',
  })
  layers!: LayerPromotionSuppression[];
}

@ObjectType({
  description:
    'The perturbation’s spectrum against the mean spectrum of clean calibration images of the class it pushes towards (the suspect’s predicted class).',
})
export class ClassSpectrumComparison {
  @Field(() => Int)
  classIndex!: number;

  @Field(() => String)
  label!: string;

  @Field(() => Boolean, {
    description: 'Whether the calibration has this class’s spectrum; if not, `reason` says why.',
  })
  available!: boolean;

  @Field(() => String, { nullable: true })
  reason?: string;

  @Field(() => Int, { nullable: true, description: 'Clean calibration images the mean is over.' })
  images?: number;

  @Field(() => [Float], {
    nullable: true,
    description:
      'The class’s mean radial log-power profile, rings as in the perturbation spectrum’s `radialLogPower` (ring 0 holds the DC).',
  })
  radialLogPower?: number[];

  @Field(() => Float, {
    nullable: true,
    description:
      'Pearson correlation of the perturbation’s radial log-power profile with the class’s, ring 0 left out (−1…1): the evaluation report’s spectrum claim, on rings.',
  })
  similarity?: number;

  @Field(() => Int, {
    nullable: true,
    description: 'The class’s rank among all classes with a spectrum by that correlation (1: none correlates better).',
  })
  rank?: number;

  @Field(() => Int, { nullable: true, description: 'Classes ranked.' })
  classesRanked?: number;

  @Field(() => String, {
    nullable: true,
    description:
      'The class’s mean log10 power spectrum (channels averaged; pooled to at most 32×32 bins of frequency), zero frequency centred, the sieve’s cut-off drawn as a dashed ring: a base64 PNG.',
  })
  logMagnitudePng?: string;
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

  @Field(() => ClassSpectrumComparison, {
    nullable: true,
    description: 'The perturbation’s spectrum against its target class’s mean; when both images were read.',
  })
  classSpectrum?: ClassSpectrumComparison;

  @Field(() => PromotionSuppression, { nullable: true, description: 'Only when the predictions differ.' })
  promotionSuppression?: PromotionSuppression;
}
