import { Arg, Authorized, Ctx, Float, Int, Mutation, Resolver } from 'type-graphql';
import { ModelArg } from '../schema/model.arg';
import type { AttackName } from '../attacks/attack';
import { AttackMethod } from '../schema/attack-method.enum';
import { AttackResult } from '../schema/attack-result.type';
import { ImageInput } from '../schema/image.input';
import { ApiContext, attack } from '../server/operations';

@Resolver()
export class AttackResolver {
  @Authorized('attack')
  @Mutation(() => AttackResult, {
    description:
      'Red-teaming: an adversarial version of the image and whether the detectors catch it. Off when NODE_ENV=production or ADVSIEVE_ATTACKS=0 (ATTACKS_DISABLED); one attack runs at a time.',
  })
  attack(
    @Arg('image', () => ImageInput) image: ImageInput,
    @Arg('method', () => AttackMethod) method: AttackName,
    @Arg('epsilon', () => Float, { description: 'Budget: L∞ radius (fgsm, pgd, square) or L2 bound (cw).' })
    epsilon: number,
    @Arg('targetClass', () => Int, { nullable: true, description: 'Targeted attack towards this class index.' })
    targetClass: number | null,
    @Arg('steps', () => Int, {
      nullable: true,
      description: 'Iterations (pgd, cw) or queries (square), capped by the service.',
    })
    steps: number | null,
    @Arg('seed', () => Int, { nullable: true, description: 'Seed of random starts and random search (default 0).' })
    seed: number | null,
    @ModelArg() model: string | null,
    @Ctx() ctx: ApiContext,
  ): Promise<AttackResult> {
    return attack(ctx, { image, method, epsilon, targetClass, steps, seed, model });
  }
}
