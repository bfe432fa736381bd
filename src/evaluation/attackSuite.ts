/**
 * The attacks the evaluation runs: the Fashion-MNIST table, the same rows scaled for photographs
 * (RGB models), and a quick one for tests.
 */
import type { AttackName } from '../attacks/attack';

export interface AttackSpec {
  /** Row name in the report. */
  readonly name: string;
  readonly method: AttackName;
  readonly epsilon: number;
  readonly steps?: number;
  /** A random target class ≠ the true one per image (seeded). */
  readonly targeted?: boolean;
  /**
   * Every image towards this one class (images of that class are left out of the row): e.g. a
   * harmless picture pushed into a class that gets it blocked — a false flag.
   */
  readonly targetClass?: number;
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

/**
 * The same rows for a model of photographs (RGB, 224×224 and up), where a gradient costs ~50× a
 * Fashion-MNIST one and ε = 0.1 would be a visible veil: the usual ImageNet budget, L∞ 8/255, fewer
 * steps, and instead of random targets one targeted row per class (every image towards that class:
 * towards a blocked class it is a false flag, towards a harmless one an evasion).
 */
export function photoAttacks(labels: readonly string[], steps = 10): AttackSpec[] {
  const eps = 8 / 255;
  return [
    { name: 'fgsm-8/255', method: 'fgsm', epsilon: eps },
    { name: 'pgd-8/255', method: 'pgd', epsilon: eps, steps },
    ...labels.map((label, k): AttackSpec => ({
      name: `pgd-8/255-to-${label}`,
      method: 'pgd',
      epsilon: eps,
      steps,
      targetClass: k,
    })),
    { name: 'cw-l2', method: 'cw', epsilon: Infinity, steps: 2 * steps },
    { name: 'square-8/255', method: 'square', epsilon: eps, steps: 10 * steps },
    { name: 'adaptive-pgd-lowpass', method: 'pgd', epsilon: eps, steps, adaptive: 'lowpass' },
    { name: 'adaptive-pgd-detectors', method: 'pgd', epsilon: eps, steps, adaptive: 'detectors' },
  ];
}

/** Few steps, for tests of the evaluation's plumbing (not for figures). */
export const QUICK_ATTACKS: readonly AttackSpec[] = [
  { name: 'fgsm-0.1', method: 'fgsm', epsilon: 0.1 },
  { name: 'pgd-0.1', method: 'pgd', epsilon: 0.1, steps: 5 },
  { name: 'adaptive-pgd-detectors', method: 'pgd', epsilon: 0.1, steps: 5, adaptive: 'detectors' },
];
