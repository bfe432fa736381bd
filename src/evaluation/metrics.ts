/**
 * Detection metrics, on detector scores where higher means "more likely adversarial": AUROC,
 * the threshold that holds a target false-positive rate on clean scores, and the true-positive
 * rate at that threshold. An image is flagged when its score is strictly above the threshold.
 */

import { mulberry32 } from '../train/random';

/**
 * Area under the ROC curve: the probability that a random positive scores above a random negative,
 * ties counting one half (the Mann-Whitney U statistic over |pos|·|neg|), in O(n log n).
 */
export function auroc(positives: ArrayLike<number>, negatives: ArrayLike<number>): number {
  const p = positives.length;
  const n = negatives.length;
  if (p === 0 || n === 0) throw new RangeError(`AUROC needs positives and negatives (got ${p} and ${n})`);
  // A NaN equals nothing, itself included: the tie loop below would never pass one.
  refuseNaN(positives, 'AUROC');
  refuseNaN(negatives, 'AUROC');
  // Both sides sorted (typed arrays sort numerically and fast), then one pass: each positive wins
  // over the negatives below it and ties with those equal to it, which count one half.
  const pos = Float64Array.from(positives).sort();
  const neg = Float64Array.from(negatives).sort();
  let below = 0;
  let equal = 0;
  let wins = 0;
  for (let i = 0; i < p; i++) {
    const s = pos[i];
    if (i === 0 || s !== pos[i - 1]) {
      below += equal;
      while (below < n && neg[below] < s) below++;
      equal = 0;
      while (below + equal < n && neg[below + equal] === s) equal++;
    }
    wins += below + equal / 2;
  }
  return wins / (p * n);
}

/**
 * A percentile-bootstrap interval of the AUROC: positives and negatives resampled apart (each
 * set keeps its size), `resamples` times, seeded. A robust model's attacks succeed on few images
 * (60 – 90 of 1 000), and with so few positives the AUROC of one draw moves by a point or more:
 * the interval says how much.
 */
export function aurocInterval(
  positives: ArrayLike<number>,
  negatives: ArrayLike<number>,
  options: { level?: number; resamples?: number; seed?: number } = {},
): [number, number] {
  const { level = 0.95, resamples = 1000, seed = 1 } = options;
  const random = mulberry32(seed);
  const draw = (from: ArrayLike<number>) =>
    Float64Array.from({ length: from.length }, () => from[Math.floor(random() * from.length)]);
  const values = Float64Array.from({ length: resamples }, () => auroc(draw(positives), draw(negatives))).sort();
  const at = (q: number) => values[Math.min(resamples - 1, Math.max(0, Math.round(q * (resamples - 1))))];
  return [at((1 - level) / 2), at((1 + level) / 2)];
}

function refuseNaN(scores: ArrayLike<number>, what: string): void {
  for (let i = 0; i < scores.length; i++) {
    if (Number.isNaN(scores[i])) throw new RangeError(`${what} needs scores that are numbers; score ${i} is NaN`);
  }
}

/**
 * The lowest threshold t such that at most `fpr` of the clean (negative) scores are > t: the
 * ⌈(1 − fpr)·n⌉-th smallest clean score. With fpr = 0.05 and 100 clean scores, 5 may exceed it.
 */
export function thresholdForFpr(negatives: ArrayLike<number>, fpr: number): number {
  if (!(fpr >= 0 && fpr <= 1)) throw new RangeError(`target false-positive rate must be in [0, 1], got ${fpr}`);
  const sorted = Float64Array.from(negatives).sort();
  if (sorted.length === 0) throw new RangeError('no clean scores to set a threshold on');
  refuseNaN(sorted, 'a threshold'); // sorted last, a NaN would become the threshold
  const allowed = Math.floor(fpr * sorted.length); // scores that may lie above the threshold
  return sorted[sorted.length - 1 - allowed];
}

/** Share of `scores` strictly above `threshold`. */
export function rateAbove(scores: ArrayLike<number>, threshold: number): number {
  let above = 0;
  for (let i = 0; i < scores.length; i++) if (scores[i] > threshold) above++;
  return scores.length ? above / scores.length : 0;
}

/** True-positive rate at the threshold that holds `fpr` on the negatives. */
export function tprAtFpr(positives: ArrayLike<number>, negatives: ArrayLike<number>, fpr: number): number {
  return rateAbove(positives, thresholdForFpr(negatives, fpr));
}

/**
 * The ROC curve for plotting: one point per threshold at each distinct score, from (0, 0) (threshold
 * at the top score, nothing flagged) to (1, 1) (everything flagged), flagging scores strictly above
 * the threshold as `rateAbove` does. Tied scores move both rates in one step, so ties draw a diagonal
 * and the trapezoid area under the unthinned curve equals `auroc`.
 *
 * Curves longer than `maxPoints` are thinned by fpr + tpr, which grows monotonically from 0 to 2
 * along the curve: a point is kept when it enters a new slice of width 2 / (maxPoints − 1), so every
 * dropped point lies within that L1 distance of a kept one, and both endpoints stay.
 */
export function rocCurve(
  positives: ArrayLike<number>,
  negatives: ArrayLike<number>,
  maxPoints = 200,
): { fpr: number[]; tpr: number[] } {
  const p = positives.length;
  const n = negatives.length;
  if (p === 0 || n === 0) throw new RangeError(`ROC curve needs positives and negatives (got ${p} and ${n})`);
  if (!(maxPoints >= 3 && (Number.isInteger(maxPoints) || maxPoints === Infinity))) {
    throw new RangeError(`maxPoints must be an integer ≥ 3 or Infinity, got ${maxPoints}`);
  }
  const all = [
    ...Array.from(positives, (s) => ({ s, pos: true })),
    ...Array.from(negatives, (s) => ({ s, pos: false })),
  ];
  if (all.some(({ s }) => Number.isNaN(s))) throw new RangeError('ROC curve scores must not be NaN');
  all.sort((a, b) => b.s - a.s);

  const fpr = [0];
  const tpr = [0];
  let truePos = 0;
  let falsePos = 0;
  for (let i = 0; i < all.length;) {
    // Lowering the threshold past one distinct score flags every item tied at it.
    const score = all[i].s;
    for (; i < all.length && all[i].s === score; i++) {
      if (all[i].pos) truePos++;
      else falsePos++;
    }
    fpr.push(falsePos / n);
    tpr.push(truePos / p);
  }
  return fpr.length <= maxPoints ? { fpr, tpr } : thinCurve(fpr, tpr, maxPoints);
}

function thinCurve(fpr: number[], tpr: number[], maxPoints: number): { fpr: number[]; tpr: number[] } {
  const last = fpr.length - 1;
  const slices = (maxPoints - 1) / 2; // interior points have fpr + tpr < 2: slices 1 … maxPoints − 2
  const out = { fpr: [fpr[0]], tpr: [tpr[0]] };
  let slice = 0;
  for (let i = 1; i < last; i++) {
    const s = Math.floor((fpr[i] + tpr[i]) * slices);
    if (s > slice) {
      slice = s;
      out.fpr.push(fpr[i]);
      out.tpr.push(tpr[i]);
    }
  }
  out.fpr.push(fpr[last]);
  out.tpr.push(tpr[last]);
  return out;
}
