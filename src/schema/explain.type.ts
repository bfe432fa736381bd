import { JudgedImage } from './judged-image.type';
import { Field, Float, Int, ObjectType } from 'type-graphql';
import { ImageError } from './image-error.type';
import { Prediction } from './prediction.type';

@ObjectType({
  description:
    'Grad-CAM for one class: where in the image the network finds evidence for it, at the layer named by the result.',
})
export class ClassActivationMap {
  @Field(() => Int)
  classIndex!: number;

  @Field(() => String)
  label!: string;

  @Field(() => Float, { description: 'The class’s logit for this image.' })
  logit!: number;

  @Field(() => Float)
  probability!: number;

  @Field(() => Int, { description: 'The raw map’s height: the layer’s resolution.' })
  height!: number;

  @Field(() => Int)
  width!: number;

  @Field(() => [Float], {
    description: 'The raw map, row-major, scaled so that its maximum is 1 (all 0: no evidence at this layer).',
  })
  values!: number[];

  @Field(() => String, {
    description: 'The map upsampled to the model’s input and overlaid on the image as it was judged (base64 PNG).',
  })
  overlay!: string;
}

@ObjectType({
  description:
    'Why the model predicts what it does: Grad-CAM (Selvaraju et al. 2017) for the predicted class and any class asked for.',
})
export class ExplainResult extends JudgedImage {
  @Field(() => String, { nullable: true, description: 'The layer (graph: node) the maps are computed at.' })
  layer?: string;

  @Field(() => Prediction, { nullable: true })
  prediction?: Prediction;

  @Field(() => [ClassActivationMap], {
    nullable: true,
    description: 'The predicted class first, then those asked for.',
  })
  maps?: ClassActivationMap[];

  @Field(() => ImageError, { nullable: true })
  error?: ImageError;
}
