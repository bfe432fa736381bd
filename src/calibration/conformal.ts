/**
 * Split-conformal thresholds and the intervals that say how far a measured or a deployed
 * false-positive rate can be trusted.
 *
 * A threshold read from n clean calibration scores holds its rate on *new* clean images only when
 * those are exchangeable with the calibration ones (same distribution). The split-conformal rule
 * (Vovk, Gammerman & Shafer 2005; Angelopoulos & Bates, "A gentle introduction to conformal
 * prediction", 2021, §3.2) takes the k-th smallest score, k = ⌈(n + 1)(1 − α)⌉, and flags scores
 * strictly above it: then the rate on a new image is at most α in expectation over the draw of the
 * calibration set — (n + 1 − k) / (n + 1) exactly, with continuous scores. For one fixed calibration
 * set, the rate it delivers is itself random: Beta(n + 1 − k, k) (the same paper, §3.2, "the
 * coverage is Beta-distributed"), which `deployedFprInterval` reads. With n = 5 000 and α = 5 %
 * that is 4.4–5.6 % at 95 %: the thresholds need thousands of images to deliver a rate to ±1 point.
 */
import { jStat } from 'jstat';

/** The rank (1-based, ascending) of the calibration score the threshold is: ⌈(n + 1)(1 − α)⌉, at least 1. */
export function conformalRank(n: number, alpha: number): number {
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`target false-positive rate must be in (0, 1), got ${alpha}`);
  if (!(Number.isInteger(n) && n > 0)) throw new RangeError(`a threshold needs clean scores, got ${n}`);
  // (less a hair: (n + 1)(1 − α) is often an integer that float arithmetic puts just above it)
  return Math.max(1, Math.ceil((n + 1) * (1 - alpha) - 1e-9));
}

/**
 * The threshold that flags at most `alpha` of new clean images in expectation: the conformal rank's
 * score, or +∞ (nothing is flagged) when α < 1 / (n + 1) and n scores cannot tell the rate apart.
 */
export function conformalThreshold(scores: ArrayLike<number>, alpha: number): number {
  const sorted = Float64Array.from(scores).sort();
  for (let i = 0; i < sorted.length; i++) {
    if (Number.isNaN(sorted[i])) throw new RangeError(`a threshold needs scores that are numbers; score ${i} is NaN`);
  }
  const k = conformalRank(sorted.length, alpha);
  return k > sorted.length ? Infinity : sorted[k - 1];
}

export interface RateInterval {
  /** The point figure: the expected rate, or the measured one. */
  readonly rate: number;
  readonly low: number;
  readonly high: number;
  /** e.g. 0.95. */
  readonly confidence: number;
}

/**
 * Where the rate delivered by one calibration set of n scores lies, at `confidence`, over the draw
 * of that set: Beta(n + 1 − k, k). Holds for new images exchangeable with the calibration ones only.
 */
export function deployedFprInterval(n: number, alpha: number, confidence = 0.95): RateInterval {
  const k = conformalRank(n, alpha);
  if (k > n) return { rate: 0, low: 0, high: 0, confidence };
  const a = n + 1 - k;
  const tail = (1 - confidence) / 2;
  return {
    rate: a / (n + 1),
    low: jStat.beta.inv(tail, a, k),
    high: jStat.beta.inv(1 - tail, a, k),
    confidence,
  };
}

/**
 * A measured rate (`hits` of `n`) with its exact (Clopper–Pearson) interval at `confidence`: never
 * narrower than it should be, also at rates near 0 where the normal approximation fails.
 */
export function clopperPearson(hits: number, n: number, confidence = 0.95): RateInterval {
  if (!(Number.isInteger(hits) && Number.isInteger(n) && n > 0 && hits >= 0 && hits <= n)) {
    throw new RangeError(`a rate needs 0 ≤ hits ≤ n and n > 0, got ${hits} of ${n}`);
  }
  const tail = (1 - confidence) / 2;
  return {
    rate: hits / n,
    low: hits === 0 ? 0 : jStat.beta.inv(tail, hits, n - hits + 1),
    high: hits === n ? 1 : jStat.beta.inv(1 - tail, hits + 1, n - hits),
    confidence,
  };
}
