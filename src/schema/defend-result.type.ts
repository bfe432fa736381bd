import { JudgedImage } from './judged-image.type';
import { Field, Float, Int, ObjectType } from 'type-graphql';
import { ImageError } from './image-error.type';
import { Prediction } from './prediction.type';

@ObjectType({ description: 'The low-pass defense applied to one image.' })
export class DefendResult extends JudgedImage {
  @Field(() => Int, { description: 'Position of the image in the request’s list.' })
  index!: number;

  @Field(() => Float, {
    nullable: true,
    description: 'Cut-off of the filter in cycles per pixel (0.5: Nyquist of one axis).',
  })
  radius?: number;

  @Field(() => String, { nullable: true, description: 'ideal or gaussian.' })
  kind?: string;

  @Field(() => Prediction, { nullable: true, description: 'The prediction on the low-passed image.' })
  prediction?: Prediction;

  @Field(() => Prediction, { nullable: true, description: 'The prediction on the image as sent.' })
  originalPrediction?: Prediction;

  @Field(() => Boolean, { nullable: true, description: 'The defense changed the predicted class.' })
  changed?: boolean;

  @Field(() => String, {
    nullable: true,
    description: 'The low-passed image as a base64 16-bit PNG (defend: always; screen: with returnPurifiedImage).',
  })
  purifiedImage?: string;

  @Field(() => ImageError, { nullable: true })
  error?: ImageError;
}
