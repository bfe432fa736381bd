import { Field, Float, ObjectType } from 'type-graphql';
import { Prediction } from './prediction.type';

@ObjectType({
  description:
    'One way a decoder may show the image, screened on its own: `image` (an opaque single image), `composited` (alpha flattened onto black, the policy’s view), `alpha-dropped` (the colour channels as stored, as OpenCV or PIL’s convert("RGB") show them), `frame:N` and `frame:N:alpha-dropped` (with ADVSIEVE_MULTI_FRAME=screen).',
})
export class ScreenedView {
  @Field(() => String)
  name!: string;

  @Field(() => Boolean, { description: 'This view’s combined score is above the threshold.' })
  adversarial!: boolean;

  @Field(() => Float, { description: 'This view’s combined score.' })
  score!: number;

  @Field(() => Prediction)
  prediction!: Prediction;
}
