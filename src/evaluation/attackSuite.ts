/** The attacks the evaluation runs: the table, and a quick one for tests. */
import type { AttackName } from '../attacks/attack';

export interface AttackSpec {
  /** Row name in the report. */
  readonly name: string;
  readonly method: AttackName;
  readonly epsilon: number;
  readonly steps?: number;
  /** A random target class ≠ the true one per image (seeded). */
  readonly targeted?: boolean;
  /** The attacker knows the defense ('lowpass') or the detectors ('detectors'). */
  readonly adaptive?: 'lowpass' | 'detectors';
}

export const EVALUATION_ATTACKS: readonly AttackSpec[] = [
  { name: 'fgsm-0.05', method: 'fgsm', epsilon: 0.05 },
  { name: 'fgsm-0.1', method: 'fgsm', epsilon: 0.1 },
  { name: 'fgsm-0.2', method: 'fgsm', epsilon: 0.2 },
  { name: 'pgd-0.1', method: 'pgd', epsilon: 0.1, steps: 40 },
  { name: 'pgd-0.1-targeted', method: 'pgd', epsilon: 0.1, steps: 40, targeted: true },
  { name: 'cw-l2', method: 'cw', epsilon: Infinity },
  { name: 'square-0.1', method: 'square', epsilon: 0.1, steps: 500 },
  { name: 'adaptive-pgd-lowpass', method: 'pgd', epsilon: 0.1, steps: 40, adaptive: 'lowpass' },
  { name: 'adaptive-pgd-detectors', method: 'pgd', epsilon: 0.1, steps: 40, adaptive: 'detectors' },
];

/** Few steps, for tests of the evaluation's plumbing (not for figures). */
export const QUICK_ATTACKS: readonly AttackSpec[] = [
  { name: 'fgsm-0.1', method: 'fgsm', epsilon: 0.1 },
  { name: 'pgd-0.1', method: 'pgd', epsilon: 0.1, steps: 5 },
  { name: 'adaptive-pgd-detectors', method: 'pgd', epsilon: 0.1, steps: 5, adaptive: 'detectors' },
];
