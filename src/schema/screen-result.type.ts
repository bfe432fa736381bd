import { JudgedImage } from './judged-image.type';
import { Field, Int, ObjectType } from 'type-graphql';
import { DefendResult } from './defend-result.type';
import { Detection } from './detection.type';
import { ImageError } from './image-error.type';
import { Prediction } from './prediction.type';
import { ScreenedView } from './screened-view.type';

@ObjectType({ description: 'One image screened: the prediction and the detectors’ verdict, or the image’s own error.' })
export class ScreenResult extends JudgedImage {
  @Field(() => Int, { description: 'Position of the image in the request’s list.' })
  index!: number;

  @Field(() => Prediction, {
    nullable: true,
    description: 'Of the most suspicious view (the highest combined score); an image of one view has only that one.',
  })
  prediction?: Prediction;

  @Field(() => Detection, {
    nullable: true,
    description: 'Of the most suspicious view: adversarial when any view is.',
  })
  detection?: Detection;

  @Field(() => [ScreenedView], {
    nullable: true,
    description:
      'Every view of the image that was screened (an image with alpha: composited and alpha-dropped, when they differ; every frame with ADVSIEVE_MULTI_FRAME=screen).',
  })
  views?: ScreenedView[];

  @Field(() => String, {
    nullable: true,
    description: 'The name of the view the verdict and prediction are of, when the image is flagged; null otherwise.',
  })
  flaggedView?: string | null;

  @Field(() => DefendResult, { nullable: true, description: 'With options.defend: the low-pass defense’s prediction.' })
  defense?: DefendResult;

  @Field(() => ImageError, {
    nullable: true,
    description: 'Set when this image could not be screened; the other fields are then null.',
  })
  error?: ImageError;
}
