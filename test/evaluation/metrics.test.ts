import { auroc, aurocInterval, rateAbove, rocCurve, thresholdForFpr, tprAtFpr } from '../../src/evaluation/metrics';
import { mulberry32 } from '../../src/train/random';

test('AUROC of separated, reversed, identical and hand-counted score sets', () => {
  expect(auroc([3, 4, 5], [0, 1, 2])).toBe(1);
  expect(auroc([0, 1, 2], [3, 4, 5])).toBe(0);
  expect(auroc([1, 1], [1, 1, 1])).toBe(0.5);
  // pos {0.8, 0.4}, neg {0.6, 0.2, 0.4}: pairs won 0.8>all 3, 0.4>0.2, 0.4=0.4 half → 4.5 / 6
  expect(auroc([0.8, 0.4], [0.6, 0.2, 0.4])).toBeCloseTo(0.75);
  expect(() => auroc([], [1])).toThrow(/positives and negatives/);
  // A NaN never ties with anything: the tie loop looped for ever on it (calibrate hung at 100 % CPU).
  expect(() => auroc([NaN, 1], [0.5])).toThrow(/score 0 is NaN/);
  expect(() => auroc([1], [0.5, NaN])).toThrow(/score 1 is NaN/);
  expect(() => thresholdForFpr([0, NaN, 1], 0.05)).toThrow(/NaN/);
});

test('threshold for a target false-positive rate lets at most that share of clean scores above it', () => {
  const clean = Array.from({ length: 100 }, (_, i) => i); // 0..99
  const t = thresholdForFpr(clean, 0.05);
  expect(t).toBe(94); // 95..99 above: 5 %
  expect(rateAbove(clean, t)).toBe(0.05);
  expect(thresholdForFpr(clean, 0)).toBe(99);
  expect(rateAbove(clean, thresholdForFpr(clean, 0.123))).toBeLessThanOrEqual(0.123);
  expect(() => thresholdForFpr(clean, 1.5)).toThrow(/\[0, 1\]/);
});

test('TPR at 5 % FPR counts positives strictly above the clean threshold', () => {
  const clean = Array.from({ length: 20 }, (_, i) => i / 20); // 0 … 0.95; threshold 0.9 (one above)
  expect(tprAtFpr([0.95, 0.91, 0.9, 0.1], clean, 0.05)).toBe(0.5);
});

test('ROC curve of perfectly separated, reversed and identical score sets', () => {
  // Thresholds 5, 4, 3, 2, 1, 0, then below 0: positives leave first.
  expect(rocCurve([3, 4, 5], [0, 1, 2])).toEqual({
    fpr: [0, 0, 0, 0, 1 / 3, 2 / 3, 1],
    tpr: [0, 1 / 3, 2 / 3, 1, 1, 1, 1],
  });
  expect(rocCurve([0, 1], [2, 3])).toEqual({ fpr: [0, 0.5, 1, 1, 1], tpr: [0, 0, 0, 0.5, 1] });
  // One shared score: a single step from (0, 0) to (1, 1), the chance diagonal.
  expect(rocCurve([1, 1], [1, 1, 1])).toEqual({ fpr: [0, 1], tpr: [0, 1] });
  expect(() => rocCurve([], [1])).toThrow(/positives and negatives/);
  expect(() => rocCurve([NaN], [1])).toThrow(/NaN/);
});

test('ROC curve moves diagonally through tied scores and agrees with rateAbove at each threshold', () => {
  // pos {0.9, 0.5, 0.5}, neg {0.5, 0.1}: threshold 0.9 → (0, 0); 0.5 → 0.9 flagged (0, 1/3);
  // 0.1 → the three at 0.5 join (1/2, 1); below 0.1 → (1, 1).
  const pos = [0.5, 0.9, 0.5];
  const neg = [0.1, 0.5];
  const roc = rocCurve(pos, neg);
  expect(roc).toEqual({ fpr: [0, 0, 0.5, 1], tpr: [0, 1 / 3, 1, 1] });
  [0.9, 0.5, 0.1].forEach((t, i) => {
    expect(roc.fpr[i]).toBe(rateAbove(neg, t));
    expect(roc.tpr[i]).toBe(rateAbove(pos, t));
  });
});

test('ROC curve area equals AUROC, and thinning keeps the endpoints and the shape', () => {
  let seed = 7;
  const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
  // Rounded scores, so there are ties as well as 1000+ distinct thresholds.
  const pos = Array.from({ length: 1500 }, () => Math.round((random() + random() + 0.6) * 1000) / 1000);
  const neg = Array.from({ length: 1500 }, () => Math.round((random() + random()) * 1000) / 1000);
  const area = ({ fpr, tpr }: { fpr: number[]; tpr: number[] }) =>
    fpr.slice(1).reduce((sum, f, i) => sum + ((f - fpr[i]) * (tpr[i + 1] + tpr[i])) / 2, 0);

  const exact = rocCurve(pos, neg, Infinity);
  expect(exact.fpr.length).toBeGreaterThan(1000);
  expect(area(exact)).toBeCloseTo(auroc(pos, neg), 10);

  const thin = rocCurve(pos, neg);
  expect(thin.fpr.length).toBeLessThanOrEqual(200);
  expect(thin.fpr.length).toBeGreaterThan(100);
  expect([thin.fpr[0], thin.tpr[0], thin.fpr.at(-1), thin.tpr.at(-1)]).toEqual([0, 0, 1, 1]);
  // Every kept point is a point of the exact curve, in order, and the area barely moves.
  let j = 0;
  thin.fpr.forEach((f, i) => {
    while (exact.fpr[j] !== f || exact.tpr[j] !== thin.tpr[i]) j++;
  });
  expect(j).toBe(exact.fpr.length - 1);
  expect(Math.abs(area(thin) - area(exact))).toBeLessThan(0.005);
  expect(rocCurve(pos, neg, 3).fpr).toHaveLength(3);
});

describe('aurocInterval', () => {
  const normal = (random: () => number) => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const scores = (n: number, shift: number, seed: number) => {
    const random = mulberry32(seed);
    return Array.from({ length: n }, () => normal(random) + shift);
  };

  test('holds the AUROC, narrows with more positives, is seeded; perfect separation is [1, 1]', () => {
    const neg = scores(1000, 0, 1);
    const few = scores(60, 2, 2);
    const many = scores(600, 2, 3);
    const [lo, hi] = aurocInterval(few, neg);
    expect(lo).toBeLessThan(auroc(few, neg));
    expect(hi).toBeGreaterThan(auroc(few, neg));
    const [lo2, hi2] = aurocInterval(many, neg);
    expect(hi2 - lo2).toBeLessThan((hi - lo) * 0.6); // ≈ 1/√10 of the width with ten times the positives
    expect(aurocInterval(few, neg)).toEqual([lo, hi]);
    expect(aurocInterval(few, neg, { seed: 2 })).not.toEqual([lo, hi]);
    expect(aurocInterval([5, 6], [1, 2, 3])).toEqual([1, 1]);
  });

  test('covers the true AUROC about as often as it says', () => {
    // Shift 1 between unit normals: the true AUROC is Φ(1/√2) = 0.7602.
    const truth = 0.7602;
    let covered = 0;
    const trials = 60;
    for (let t = 0; t < trials; t++) {
      const [lo, hi] = aurocInterval(scores(40, 1, 100 + t), scores(200, 0, 500 + t), { resamples: 400, seed: t });
      if (lo <= truth && truth <= hi) covered++;
    }
    expect(covered / trials).toBeGreaterThan(0.85);
  });
});

test('AUROC equals the pairwise count on random scores with many ties', () => {
  const random = mulberry32(9);
  for (let t = 0; t < 20; t++) {
    const pos = Array.from({ length: 1 + Math.floor(random() * 30) }, () => Math.floor(random() * 8));
    const neg = Array.from({ length: 1 + Math.floor(random() * 30) }, () => Math.floor(random() * 8) - 1);
    let wins = 0;
    for (const p of pos) for (const n of neg) wins += p > n ? 1 : p === n ? 0.5 : 0;
    expect(auroc(pos, neg)).toBeCloseTo(wins / (pos.length * neg.length), 12);
  }
});
