import { Authorized, Ctx, Query, Resolver } from 'type-graphql';
import { EngineStats, Limits, ModelInfo } from '../schema/model-info.type';
import type { ApiContext } from '../server/operations';
import { engineStats, limits, modelInfo } from '../server/info';

@Resolver()
export class ModelResolver {
  @Authorized('screen')
  @Query(() => ModelInfo, { description: 'The model, its calibration and how the engine runs it.' })
  model(@Ctx() ctx: ApiContext): ModelInfo {
    return modelInfo(ctx.service);
  }

  @Authorized('screen')
  @Query(() => EngineStats, { description: 'Batch statistics of the engine since start: how requests were merged.' })
  engineStats(@Ctx() ctx: ApiContext): EngineStats {
    return engineStats(ctx.service);
  }

  @Authorized('screen')
  @Query(() => Limits, { description: 'Request limits in force.' })
  limits(@Ctx() ctx: ApiContext): Limits {
    return limits(ctx.service);
  }
}
