import { JudgedImage } from './judged-image.type';
import { Field, Float, Int, ObjectType } from 'type-graphql';
import { AttackMethod } from './attack-method.enum';
import { ImageError } from './image-error.type';
import { Prediction } from './prediction.type';
import { ScreenResult } from './screen-result.type';

@ObjectType({ description: 'An adversarial version of an image, and what the model and the detectors make of it.' })
export class AttackResult extends JudgedImage {
  @Field(() => AttackMethod)
  method!: string;

  @Field(() => Float)
  epsilon!: number;

  @Field(() => Int, { nullable: true, description: 'The class a targeted attack aimed at.' })
  targetClass?: number;

  @Field(() => Int, { nullable: true, description: 'Iterations or queries the attack ran (capped by the service).' })
  steps?: number;

  @Field(() => Prediction, { nullable: true })
  original?: Prediction;

  @Field(() => Prediction, {
    nullable: true,
    description: 'The prediction on the adversarial image as returned (16-bit PNG, decoded again).',
  })
  adversarial?: Prediction;

  @Field(() => Boolean, {
    nullable: true,
    description: 'Untargeted: the class changed; targeted: the target class was reached.',
  })
  success?: boolean;

  @Field(() => Float, { nullable: true, description: 'L∞ distance to the original, pixel values in [0, 1].' })
  linf?: number;

  @Field(() => Float, { nullable: true })
  l2?: number;

  @Field(() => String, { nullable: true, description: 'The adversarial image, base64 16-bit PNG.' })
  adversarialImage?: string;

  @Field(() => ScreenResult, {
    nullable: true,
    description: 'The adversarial image screened, as `screen` would answer.',
  })
  screening?: ScreenResult;

  @Field(() => ImageError, { nullable: true })
  error?: ImageError;
}
