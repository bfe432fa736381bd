import { Arg, Authorized, Ctx, Float, Int, Mutation, Resolver } from 'type-graphql';
import { ModelArg } from '../schema/model.arg';
import { ClassifyResult } from '../schema/classify-result.type';
import { DefendResult } from '../schema/defend-result.type';
import { ImageInput } from '../schema/image.input';
import { ScreenOptions } from '../schema/screen-options.input';
import { ScreenResult } from '../schema/screen-result.type';
import { ApiContext, classify, defend, screen } from '../server/operations';

@Resolver()
export class ScreenResolver {
  @Authorized('oracle')
  @Mutation(() => [ClassifyResult], {
    description: 'The model’s prediction for each image, in order, unscreened (the `oracle` scope; audited).',
  })
  classify(
    @Arg('images', () => [ImageInput]) images: ImageInput[],
    @Arg('top', () => Int, { nullable: true, description: 'Classes listed per prediction.' }) top: number | null,
    @ModelArg() model: string | null,
    @Ctx() ctx: ApiContext,
  ): Promise<ClassifyResult[]> {
    return classify(ctx, images, top, model);
  }

  @Authorized('screen')
  @Mutation(() => [ScreenResult], {
    description:
      'Each image’s prediction and whether it looks adversarial, with every detector’s score and threshold; one result per image, in order. An image that cannot be read gets its own `error`; the others are screened.',
  })
  screen(
    @Arg('images', () => [ImageInput]) images: ImageInput[],
    @Arg('options', () => ScreenOptions, { nullable: true }) options: ScreenOptions | null,
    @ModelArg() model: string | null,
    @Ctx() ctx: ApiContext,
  ): Promise<ScreenResult[]> {
    return screen(ctx, images, options, model);
  }

  @Authorized('oracle')
  @Mutation(() => [DefendResult], {
    description:
      'The low-pass defense: each image filtered, classified again, and returned (base64 PNG); unscreened (the `oracle` scope; audited).',
  })
  defend(
    @Arg('images', () => [ImageInput]) images: ImageInput[],
    @Arg('radius', () => Float, {
      nullable: true,
      description: 'Cut-off in cycles per pixel, in (0, 1]; default: the calibrated one.',
    })
    radius: number | null,
    @ModelArg() model: string | null,
    @Ctx() ctx: ApiContext,
  ): Promise<DefendResult[]> {
    return defend(ctx, images, radius, model);
  }
}
