/** The attacks by id, with default hyper-parameters: the one list the CLI and the GraphQL enum are built from. */
import { Attack, AttackName } from './attack';
import { CarliniWagnerL2 } from './cw';
import { EndToEnd } from './endToEnd';
import { FeatureMatching } from './featureMatching';
import { FastGradientSignMethod } from './fgsm';
import { ProjectedGradientDescent } from './pgd';
import { SquareAttack } from './square';

/** Attacks keep no per-call state, so one default instance each serves every caller. */
export const ATTACKS: Readonly<Record<AttackName, Attack>> = {
  fgsm: new FastGradientSignMethod(),
  pgd: new ProjectedGradientDescent(),
  cw: new CarliniWagnerL2(),
  square: new SquareAttack(),
};

export const ATTACK_NAMES = Object.keys(ATTACKS) as readonly AttackName[];

/**
 * Attacks the evaluation runs that need more than an image and a budget — a guide image per image,
 * or a detector-aware target and hundreds of steps: not offered by the API's `attack` or the CLI.
 */
export const RESEARCH_ATTACKS = {
  'feature-matching': new FeatureMatching(),
  // Below the sieve's usual cut-offs (0.25-0.35 cycles/pixel): what a high-frequency detector cannot see.
  'feature-matching-lowfreq': new FeatureMatching({ lowFrequencyRadius: 0.2 }),
  'pgd-e2e': new EndToEnd(),
} as const;

export type ResearchAttackName = keyof typeof RESEARCH_ATTACKS;

export function isAttackName(name: string): name is AttackName {
  return Object.prototype.hasOwnProperty.call(ATTACKS, name);
}

export function getAttack(name: string): Attack {
  if (Object.prototype.hasOwnProperty.call(RESEARCH_ATTACKS, name)) return RESEARCH_ATTACKS[name as ResearchAttackName];
  if (!isAttackName(name)) throw new RangeError(`unknown attack '${name}'; expected one of ${ATTACK_NAMES.join(', ')}`);
  return ATTACKS[name];
}
