/**
 * Attack success and the confidence of what the attacks make, over a grid of budgets: the study's
 * "how vulnerable" and "how sure of the wrong answer" (the paper's high confidence of adversarial
 * predictions). Attacked are the images the model classifies right (an attack cannot "succeed" on
 * an image already wrong); success is a changed prediction.
 *
 * Two rates per budget: `successRate`, what the attack run at that budget achieved, and
 * `successWithinBudget`, the share broken by a run at that budget or a smaller one: an attacker
 * with budget ε may use any smaller perturbation, so this is the lower bound on the worst case that
 * the runs establish, and it cannot fall as ε grows (one PGD run from a random start can miss what
 * a run with less budget found). CW-L2 is run once, without a bound: it returns the smallest
 * adversarial it finds, and success within an L2 budget is that perturbation's norm being within it.
 */
import { getAttack } from '../attacks/registry';
import { attackInBatches } from '../attacks/runAttack';
import { modelTarget } from '../attacks/target';
import { argmax } from '../detectors/detector';
import type { InferenceModel } from '../engine/model';
import { runInBatches } from '../screening/inProcess';

export interface LabelledPixels {
  readonly pixels: Float32Array;
  readonly labels: Int32Array;
  readonly count: number;
}

export interface BudgetRow {
  readonly epsilon: number;
  readonly successRate: number;
  readonly successWithinBudget: number;
  /** Images the run at this budget broke. */
  readonly successful: number;
  /** Mean probability the model gives its (wrong) prediction on the run's successful images; null when none. */
  readonly meanConfidence: number | null;
  /** The confidences themselves (for intervals; not written to the report). */
  readonly confidences: number[];
}

export interface AttackCurve {
  readonly attack: 'fgsm' | 'pgd' | 'cw';
  readonly norm: 'linf' | 'l2';
  /** Correctly classified images attacked. */
  readonly images: number;
  readonly rows: BudgetRow[];
}

/** The adversarial images of one run that changed the prediction (what detection is measured on). */
export interface Successful {
  readonly name: string;
  readonly pixels: Float32Array;
  readonly count: number;
}

export interface RobustnessSettings {
  readonly linfBudgets: readonly number[];
  readonly l2Budgets: readonly number[];
  readonly pgdSteps: number;
  readonly cwSteps: number;
  readonly seed: number;
  /** The L∞ budget whose FGSM and PGD successes are kept for detection. */
  readonly detectionEpsilon: number;
}

function l2Distance(a: Float32Array, b: Float32Array, i: number, size: number): number {
  let s = 0;
  for (let j = i * size; j < (i + 1) * size; j++) s += (a[j] - b[j]) ** 2;
  return Math.sqrt(s);
}

function pick(pixels: Float32Array, indices: number[], size: number): Float32Array {
  const out = new Float32Array(indices.length * size);
  indices.forEach((i, k) => out.set(pixels.subarray(i * size, (i + 1) * size), k * size));
  return out;
}

/** Predictions and the confidence of each (the model's own probability output). */
async function predictions(model: InferenceModel, pixels: Float32Array, count: number) {
  const outs = await runInBatches(model, pixels, count);
  return outs.map((o) => {
    const k = argmax(o.probs);
    return { predicted: k, confidence: o.probs[k] };
  });
}

function row(epsilon: number, broken: boolean[], confidences: number[], within: boolean[]): BudgetRow {
  const n = Math.max(1, broken.length);
  const successful = broken.filter(Boolean).length;
  return {
    epsilon,
    successRate: successful / n,
    successWithinBudget: within.filter(Boolean).length / n,
    successful,
    meanConfidence: confidences.length ? confidences.reduce((s, c) => s + c, 0) / confidences.length : null,
    confidences,
  };
}

/** FGSM and PGD over the L∞ budgets, CW-L2 over the L2 budgets, on `set` (correctly classified images). */
export async function robustness(
  model: InferenceModel,
  set: LabelledPixels,
  settings: RobustnessSettings,
  onStage: (stage: string) => void = () => undefined,
): Promise<{ curves: AttackCurve[]; successful: Successful[]; cwL2: number[] }> {
  const size = model.imageSize;
  const target = modelTarget(model);
  const curves: AttackCurve[] = [];
  const successful: Successful[] = [];
  for (const method of ['fgsm', 'pgd'] as const) {
    const within = new Array<boolean>(set.count).fill(false);
    const rows: BudgetRow[] = [];
    for (const epsilon of [...settings.linfBudgets].sort((a, b) => a - b)) {
      onStage(`${method} ε ${epsilon} on ${set.count} images`);
      const adv = await attackInBatches(getAttack(method), target, set.pixels, set.labels, model.inputShape, {
        epsilon,
        steps: method === 'pgd' ? settings.pgdSteps : undefined,
        seed: settings.seed,
      });
      const preds = await predictions(model, adv, set.count);
      const broken = preds.map((p, i) => p.predicted !== set.labels[i]);
      broken.forEach((b, i) => (within[i] ||= b));
      const hits = broken.flatMap((b, i) => (b ? [i] : []));
      rows.push(
        row(
          epsilon,
          broken,
          hits.map((i) => preds[i].confidence),
          within,
        ),
      );
      if (epsilon === settings.detectionEpsilon)
        successful.push({ name: `${method}-${epsilon}`, pixels: pick(adv, hits, size), count: hits.length });
    }
    curves.push({ attack: method, norm: 'linf', images: set.count, rows });
  }
  onStage(`cw-l2 (unbounded, ${settings.cwSteps} steps) on ${set.count} images`);
  const adv = await attackInBatches(getAttack('cw'), target, set.pixels, set.labels, model.inputShape, {
    epsilon: Infinity,
    steps: settings.cwSteps,
    seed: settings.seed,
  });
  const preds = await predictions(model, adv, set.count);
  const norms = preds.map((_, i) => l2Distance(adv, set.pixels, i, size));
  const brokenAtAll = preds.map((p, i) => p.predicted !== set.labels[i]);
  const rows = [...settings.l2Budgets]
    .sort((a, b) => a - b)
    .map((budget) => {
      const broken = brokenAtAll.map((b, i) => b && norms[i] <= budget);
      const hits = broken.flatMap((b, i) => (b ? [i] : []));
      return row(
        budget,
        broken,
        hits.map((i) => preds[i].confidence),
        broken,
      );
    });
  curves.push({ attack: 'cw', norm: 'l2', images: set.count, rows });
  const hits = brokenAtAll.flatMap((b, i) => (b ? [i] : []));
  successful.push({ name: 'cw-l2', pixels: pick(adv, hits, size), count: hits.length });
  // Per attacked image, the L2 norm of the smallest adversarial CW found (∞: none): a measured distance to the boundary.
  return { curves, successful, cwL2: norms.map((d, i) => (brokenAtAll[i] ? d : Infinity)) };
}
