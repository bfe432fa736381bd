import { JudgedImage } from './judged-image.type';
import { Field, Int, ObjectType } from 'type-graphql';
import { ImageError } from './image-error.type';
import { Prediction } from './prediction.type';

@ObjectType({ description: 'One image classified, or the image’s own error.' })
export class ClassifyResult extends JudgedImage {
  @Field(() => Int)
  index!: number;

  @Field(() => Prediction, { nullable: true })
  prediction?: Prediction;

  @Field(() => ImageError, { nullable: true })
  error?: ImageError;
}
