import { Arg, Authorized, Ctx, Query, Resolver } from 'type-graphql';
import { EngineStats, Limits, ModelInfo } from '../schema/model-info.type';
import type { ApiContext } from '../server/operations';
import { engineStats, limits, modelInfo } from '../server/info';

@Resolver()
export class ModelResolver {
  @Authorized('screen')
  @Query(() => ModelInfo, {
    description: 'A model (default: the default one), its calibration and how its engine runs it.',
  })
  model(
    @Arg('id', () => String, { nullable: true, description: 'The model’s id; default: the service’s default model.' })
    id: string | null,
    @Ctx() ctx: ApiContext,
  ): ModelInfo {
    return modelInfo(ctx.service.model(id));
  }

  @Authorized('screen')
  @Query(() => [ModelInfo], {
    description: 'Every model this service screens for, the default first; fields take one by its `id` as `model`.',
  })
  models(@Ctx() ctx: ApiContext): ModelInfo[] {
    return ctx.service.models.map((m) => modelInfo(m));
  }

  @Authorized('screen')
  @Query(() => EngineStats, {
    description:
      'Batch statistics of a model’s engine (default: the default model’s) since start: how requests were merged.',
  })
  engineStats(
    @Arg('model', () => String, {
      nullable: true,
      description: 'The model’s id; default: the service’s default model.',
    })
    model: string | null,
    @Ctx() ctx: ApiContext,
  ): EngineStats {
    return engineStats(ctx.service.model(model));
  }

  @Authorized('screen')
  @Query(() => Limits, { description: 'Request limits in force.' })
  limits(@Ctx() ctx: ApiContext): Limits {
    return limits(ctx.service);
  }
}
