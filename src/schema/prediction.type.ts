import { Field, Float, Int, ObjectType } from 'type-graphql';

@ObjectType({ description: 'One class and its probability.' })
export class ClassScore {
  @Field(() => String)
  label!: string;

  @Field(() => Int)
  classIndex!: number;

  @Field(() => Float, {
    description:
      "The class's probability: its softmax, or its own sigmoid for a one-vs-rest model (metadata `probabilities: sigmoid`).",
  })
  score!: number;
}

@ObjectType({ description: 'What the model predicts for an image.' })
export class Prediction {
  @Field(() => String)
  label!: string;

  @Field(() => Int)
  classIndex!: number;

  @Field(() => Float, { description: 'Probability of the predicted class.' })
  confidence!: number;

  @Field(() => [ClassScore], { description: 'The most probable classes, most probable first.' })
  top!: ClassScore[];
}
