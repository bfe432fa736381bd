/** The attacks by id, with default hyper-parameters: the one list the CLI and the GraphQL enum are built from. */
import { Attack, AttackName } from './attack';
import { CarliniWagnerL2 } from './cw';
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

export function isAttackName(name: string): name is AttackName {
  return Object.prototype.hasOwnProperty.call(ATTACKS, name);
}

export function getAttack(name: string): Attack {
  if (!isAttackName(name)) throw new RangeError(`unknown attack '${name}'; expected one of ${ATTACK_NAMES.join(', ')}`);
  return ATTACKS[name];
}
