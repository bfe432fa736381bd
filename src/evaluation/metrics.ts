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

/**
 * The lowest threshold t such that at most `fpr` of the clean (negative) scores are > t: the
 * ⌈(1 − fpr)·n⌉-th smallest clean score. With fpr = 0.05 and 100 clean scores, 5 may exceed it.
 */
export function thresholdForFpr(negatives: ArrayLike<number>, fpr: number): number {
  if (!(fpr >= 0 && fpr <= 1)) throw new RangeError(`target false-positive rate must be in [0, 1], got ${fpr}`);
  const sorted = Float64Array.from(negatives).sort();
  if (sorted.length === 0) throw new RangeError('no clean scores to set a threshold on');
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
