import { Arg, Authorized, Ctx, Query, Resolver } from 'type-graphql';
import { ModelArg } from '../schema/model.arg';
import { ImageInput } from '../schema/image.input';
import { SpectrumResult } from '../schema/spectrum.type';
import { TrajectoryResult } from '../schema/trajectory.type';
import { ApiContext, spectrum, trajectory } from '../server/operations';

@Resolver()
export class AnalysisResolver {
  @Authorized('oracle')
  @Query(() => SpectrumResult, {
    description:
      'The image’s power spectrum: radial energy profile, high-frequency share and a log-magnitude PNG (the `oracle` scope; audited).',
  })
  spectrum(
    @Arg('image', () => ImageInput) image: ImageInput,
    @ModelArg() model: string | null,
    @Ctx() ctx: ApiContext,
  ): Promise<SpectrumResult> {
    return spectrum(ctx, image, model);
  }

  @Authorized('oracle')
  @Query(() => TrajectoryResult, {
    description:
      'Per layer, the distance of the image’s activations to every class expectation, unscreened (the `oracle` scope; audited).',
  })
  trajectory(
    @Arg('image', () => ImageInput) image: ImageInput,
    @ModelArg() model: string | null,
    @Ctx() ctx: ApiContext,
  ): Promise<TrajectoryResult> {
    return trajectory(ctx, image, model);
  }
}
