/**
 * Detection metrics, on detector scores where higher means "more likely adversarial": AUROC,
 * the threshold that holds a target false-positive rate on clean scores, and the true-positive
 * rate at that threshold. An image is flagged when its score is strictly above the threshold.
 */

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
  const all = [...Array.from(positives, (s) => ({ s, pos: 1 })), ...Array.from(negatives, (s) => ({ s, pos: 0 }))].sort(
    (a, b) => a.s - b.s,
  );
  // Rank-sum of the positives, with tied scores sharing their average rank.
  let rankSum = 0;
  for (let i = 0; i < all.length;) {
    let j = i;
    while (j < all.length && all[j].s === all[i].s) j++;
    const averageRank = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) if (all[k].pos) rankSum += averageRank;
    i = j;
  }
  return (rankSum - (p * (p + 1)) / 2) / (p * n);
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
