import { Arg, Authorized, Ctx, Int, Query, Resolver } from 'type-graphql';
import { ModelArg } from '../schema/model.arg';
import { ImageInput } from '../schema/image.input';
import { SpectrumResult } from '../schema/spectrum.type';
import { TrajectoryResult } from '../schema/trajectory.type';
import { ApiContext, explain, MAX_EXPLAIN_CLASSES, spectrum, trajectory } from '../server/operations';
import { ExplainResult } from '../schema/explain.type';
import { CompareResult } from '../schema/compare.type';
import { compare } from '../server/compare';

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

  @Authorized('oracle')
  @Query(() => ExplainResult, {
    description:
      'Grad-CAM: where in the image the model finds evidence for the predicted class and any class asked for, as raw maps and overlays (the `oracle` scope; audited).',
  })
  explain(
    @Arg('image', () => ImageInput) image: ImageInput,
    @Arg('classes', () => [Int], {
      nullable: true,
      description: `Class indices to map besides the predicted one (at most ${MAX_EXPLAIN_CLASSES}).`,
    })
    classes: number[] | null,
    @Arg('layer', () => String, {
      nullable: true,
      description: 'One of the model’s activation layers; default: the deepest with a spatial output.',
    })
    layer: string | null,
    @ModelArg() model: string | null,
    @Ctx() ctx: ApiContext,
  ): Promise<ExplainResult> {
    return explain(ctx, image, classes, layer, model);
  }

  @Authorized('oracle')
  @Query(() => CompareResult, {
    description:
      'An original and a suspected adversarial version side by side: the perturbation, its spectrum, promotion–suppression, Grad-CAM and trajectories (the `oracle` scope; audited).',
  })
  compare(
    @Arg('clean', () => ImageInput) clean: ImageInput,
    @Arg('suspect', () => ImageInput) suspect: ImageInput,
    @ModelArg() model: string | null,
    @Ctx() ctx: ApiContext,
  ): Promise<CompareResult> {
    return compare(ctx, clean, suspect, model);
  }
}
