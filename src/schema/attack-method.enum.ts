/** The attack methods as a GraphQL enum, built from the attack registry (the one list of ids). */
import { registerEnumType } from 'type-graphql';
import { AttackName } from '../attacks/attack';
import { ATTACK_NAMES } from '../attacks/registry';

/** FGSM → 'fgsm', …: GraphQL names in capitals, internal values the registry's ids. */
export const AttackMethod = Object.fromEntries(ATTACK_NAMES.map((n) => [n.toUpperCase(), n])) as Record<
  string,
  AttackName
>;

registerEnumType(AttackMethod, {
  name: 'AttackMethod',
  description:
    'fgsm: FGSM (L∞, one step); pgd: PGD (L∞); cw: Carlini–Wagner L2; square: Square attack (L∞, queries only).',
});
