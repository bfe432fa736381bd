import { JudgedImage } from './judged-image.type';
import { Field, Float, Int, ObjectType } from 'type-graphql';
import { ImageError } from './image-error.type';
import { Prediction } from './prediction.type';

@ObjectType({ description: 'At one layer: the distance of the image’s activations to every class expectation.' })
export class TrajectoryStep {
  @Field(() => String)
  layer!: string;

  @Field(() => [Float], { description: 'Euclidean distance to each class’s mean activation, by class index.' })
  distances!: number[];

  @Field(() => Int)
  nearestClass!: number;

  @Field(() => String)
  nearestLabel!: string;
}

@ObjectType({
  description:
    'The feature trajectory: layer by layer, which class the activations are nearest. Clean images settle on their class early; adversarial ones tend to switch late.',
})
export class TrajectoryResult extends JudgedImage {
  @Field(() => Prediction, { nullable: true })
  prediction?: Prediction;

  @Field(() => [TrajectoryStep], { nullable: true, description: 'Input side first.' })
  steps?: TrajectoryStep[];

  @Field(() => ImageError, { nullable: true })
  error?: ImageError;
}
