import { Field, Int, ObjectType } from 'type-graphql';
import { ImageError } from './image-error.type';
import { Prediction } from './prediction.type';

@ObjectType({ description: 'One image classified, or the image’s own error.' })
export class ClassifyResult {
  @Field(() => Int)
  index!: number;

  @Field(() => String, { nullable: true })
  sha256?: string;

  @Field(() => String, {
    nullable: true,
    description: 'Id of the model that judged the image (the `model` argument, else the default model).',
  })
  model?: string;

  @Field(() => Prediction, { nullable: true })
  prediction?: Prediction;

  @Field(() => ImageError, { nullable: true })
  error?: ImageError;
}
