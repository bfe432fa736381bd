import { auroc, rateAbove, thresholdForFpr, tprAtFpr } from '../../src/evaluation/metrics';

test('AUROC of separated, reversed, identical and hand-counted score sets', () => {
  expect(auroc([3, 4, 5], [0, 1, 2])).toBe(1);
  expect(auroc([0, 1, 2], [3, 4, 5])).toBe(0);
  expect(auroc([1, 1], [1, 1, 1])).toBe(0.5);
  // pos {0.8, 0.4}, neg {0.6, 0.2, 0.4}: pairs won 0.8>all 3, 0.4>0.2, 0.4=0.4 half → 4.5 / 6
  expect(auroc([0.8, 0.4], [0.6, 0.2, 0.4])).toBeCloseTo(0.75);
  expect(() => auroc([], [1])).toThrow(/positives and negatives/);
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
