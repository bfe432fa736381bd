/**
 * Hardening the combined verdict against an attacker who knows it: "a combined verdict trained on
 * adaptive attacks against itself, iterated" (issue 13; the detector-side analogue of adversarial
 * training, Madry et al. 2018). Fitted on the calibration attacks alone, the verdict learns what
 * attacks that ignore it look like; an attacker who differentiates through it (src/attacks/
 * endToEnd.ts aimed at the verdict) finds the images it scores clean. Each round:
 *  - attacks fresh training images end to end, aimed at the current verdict at the target rate
 *    (the attack evaluate measures with, with fewer steps and one run: a round is a training step,
 *    not a measurement), at each budget of `epsilons` in turn;
 *  - adds the attacked images the model now misclassifies to the verdict's adversarial rows — the
 *    ones that got through and the ones it still flagged, so the refit keeps catching those;
 *  - refits the verdict (regression and "either one" terms) with each round's attacks weighing as
 *    much as all the non-adaptive calibration attacks together: the few images an adaptive attack
 *    gets through would otherwise be outvoted by hundreds of easy ones.
 * The detectors themselves stay as fitted; only how the verdict weighs them moves. Thresholds are
 * read afterwards on the combined score, as without hardening, so the clean rate does not depend
 * on any of this.
 */
import { EndToEnd } from '../attacks/endToEnd';
import { detectorAwareTarget } from '../attacks/adaptive';
import { attackInBatches } from '../attacks/runAttack';
import type { Calibration } from './calibrationFile';
import type { CombinedState } from '../detectors/combined';
import { argmax } from '../detectors/detector';
import type { InferenceModel } from '../engine/model';
import { probabilitiesInBatches } from '../screening/inProcess';
import { Screener } from '../screening/screener';
import { pickImages } from '../data/labelledImages';
import { flaggedAt } from './verdictUnion';

export interface HardeningOptions {
  /** Rounds of attack-and-refit (at least 1). */
  readonly rounds: number;
  /** Training images attacked per round (those the model classifies right). */
  readonly images: number;
  /** Steps of each round's end-to-end attack. */
  readonly steps: number;
  /** L∞ budgets, the round's images split evenly between them. */
  readonly epsilons: readonly number[];
}

export const HARDENING_DEFAULTS: Omit<HardeningOptions, 'rounds'> = {
  images: 400,
  steps: 100,
  epsilons: [0.1, 0.2],
};

/** What a round did, for the calibration's summary. */
export interface HardeningRound {
  readonly attacked: number;
  /** Attacked images the model misclassified: added to the verdict's adversarial rows. */
  readonly misclassified: number;
  /** Of those, the share the verdict the round attacked did not flag at the target rate. */
  readonly evadedBefore: number;
  /** The same images against the refitted verdict (in-sample: it was fitted on them). */
  readonly evadedAfter: number;
  readonly seconds: number;
}

export interface HardeningInput {
  readonly model: InferenceModel;
  /** Clean training images to attack, used in order; round r takes the next `images` right ones. */
  readonly images: { readonly pixels: Float32Array; readonly labels: Int32Array; readonly count: number };
  readonly options: HardeningOptions;
  readonly seed: number;
  readonly targetFpr: number;
  /** The verdict before hardening, and its non-adaptive adversarial rows (detector scores). */
  readonly combined: CombinedState;
  readonly adversarial: readonly number[][];
  /** A calibration that screens with `combined` (thresholds from the clean hold-out rows). */
  readonly calibrationWith: (combined: CombinedState) => Calibration;
  /** The detector scores (in `combined.detectors` order) of images. */
  readonly scoresOf: (pixels: Float32Array, count: number) => Promise<number[][]>;
  /** The weights of `adversarial` in the verdict's fit (calibrate's attackRowWeights; summing to their count); all 1 without. */
  readonly adversarialWeights?: readonly number[];
  /** Refits the verdict on these adversarial rows and weights (fitCombined, then fitUnion). */
  readonly refit: (adversarial: readonly number[][], weights: readonly number[]) => CombinedState;
  /** Clean hold-out rows (detector scores): a verdict's threshold at the target rate is read on them. */
  readonly clean: readonly number[][];
  readonly onRound?: (round: number, stage: string) => void;
  readonly onProgress?: (done: number, total: number) => void;
}

export async function hardenVerdict(
  input: HardeningInput,
): Promise<{ combined: CombinedState; rounds: HardeningRound[] }> {
  const { model, images, options } = input;
  checkOptions(options);
  const size = model.imageSize;
  const labels = model.metadata.labels;
  // Only images the model classifies right are attacked: a misclassified clean image is no attack.
  const probs = await probabilitiesInBatches(model, images.pixels, images.count);
  const right = probs.flatMap((p, i) => (argmax(p) === images.labels[i] ? [i] : []));
  if (!right.length) throw new Error('hardening: the model classifies none of the hardening images right');

  const rows: number[][] = [...input.adversarial];
  const weights: number[] = input.adversarialWeights ? [...input.adversarialWeights] : input.adversarial.map(() => 1);
  let combined = input.combined;
  const rounds: HardeningRound[] = [];
  let next = 0;
  for (let round = 0; round < options.rounds; round++) {
    const started = Date.now();
    // The next `images` right images, wrapping round when the pool is smaller than all rounds need.
    const picked = Array.from(
      { length: Math.min(options.images, right.length) },
      (_, k) => right[(next + k) % right.length],
    );
    next += picked.length;
    const { pixels, labels: truth } = pickImages(images, picked, size);
    input.onRound?.(round, `attacking ${picked.length} images end to end against the verdict`);
    const target = detectorAwareTarget(
      model,
      new Screener(input.calibrationWith(combined), labels),
      input.targetFpr,
      'verdict',
    );
    const attack = new EndToEnd({ restarts: 1 });
    const adversarial = new Float32Array(pixels.length);
    const share = Math.ceil(picked.length / options.epsilons.length);
    for (const [e, epsilon] of options.epsilons.entries()) {
      const start = e * share;
      const end = Math.min(picked.length, start + share);
      if (start >= end) break;
      const out = await attackInBatches(
        attack,
        target,
        pixels.subarray(start * size, end * size),
        truth.subarray(start, end),
        model.inputShape,
        { epsilon, steps: options.steps, seed: input.seed + 7919 * (round + 1) + start },
        (done) => input.onProgress?.(start + done, picked.length),
      );
      adversarial.set(out, start * size);
    }
    const advProbs = await probabilitiesInBatches(model, adversarial, picked.length);
    const wrong = advProbs.flatMap((p, k) => (argmax(p) !== truth[k] ? [k] : []));
    const before = combined;
    let found: number[][] = [];
    if (wrong.length) {
      const misclassified = pickImages({ pixels: adversarial, labels: truth }, wrong, size);
      input.onRound?.(round, `refitting the verdict with ${wrong.length} adaptive attacks`);
      found = await input.scoresOf(misclassified.pixels, misclassified.count);
      rows.push(...found);
      // This round's attacks weigh as much as the non-adaptive ones together.
      weights.push(...found.map(() => input.adversarial.length / found.length));
      combined = input.refit(rows, weights);
    }
    const evaded = (state: CombinedState) =>
      found.length ? 1 - flaggedAt(state, input.clean, found, input.targetFpr) : 0;
    rounds.push({
      attacked: picked.length,
      misclassified: wrong.length,
      evadedBefore: evaded(before),
      evadedAfter: evaded(combined),
      seconds: (Date.now() - started) / 1000,
    });
  }
  return { combined, rounds };
}

function checkOptions(o: HardeningOptions): void {
  if (!(Number.isInteger(o.rounds) && o.rounds >= 1))
    throw new RangeError(`rounds: expected an integer ≥ 1, got ${o.rounds}`);
  if (!(Number.isInteger(o.images) && o.images >= 1))
    throw new RangeError(`images: expected an integer ≥ 1, got ${o.images}`);
  if (!(Number.isInteger(o.steps) && o.steps >= 1))
    throw new RangeError(`steps: expected an integer ≥ 1, got ${o.steps}`);
  if (!o.epsilons.length || !o.epsilons.every((e) => e > 0 && e <= 1))
    throw new RangeError(`epsilons: expected budgets in (0, 1], got ${o.epsilons.join(', ')}`);
}

/** What calibration's summary records of hardening (`summary.hardening`). */
export interface HardeningSummary {
  readonly settings: HardeningOptions;
  readonly rounds: readonly HardeningRound[];
}
