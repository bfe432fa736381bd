import { Field, Int, ObjectType } from 'type-graphql';
import { DefendResult } from './defend-result.type';
import { Detection } from './detection.type';
import { ImageError } from './image-error.type';
import { Prediction } from './prediction.type';

@ObjectType({ description: 'One image screened: the prediction and the detectors’ verdict, or the image’s own error.' })
export class ScreenResult {
  @Field(() => Int, { description: 'Position of the image in the request’s list.' })
  index!: number;

  @Field(() => String, { nullable: true, description: 'SHA-256 (hex) of the image file’s bytes.' })
  sha256?: string;

  @Field(() => Prediction, { nullable: true })
  prediction?: Prediction;

  @Field(() => Detection, { nullable: true })
  detection?: Detection;

  @Field(() => DefendResult, { nullable: true, description: 'With options.defend: the low-pass defense’s prediction.' })
  defense?: DefendResult;

  @Field(() => ImageError, {
    nullable: true,
    description: 'Set when this image could not be screened; the other fields are then null.',
  })
  error?: ImageError;
}
