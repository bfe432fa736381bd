/** Split-conformal thresholds and rate intervals: known answers, and coverage by simulation. */
import {
  clopperPearson,
  conformalRank,
  conformalThreshold,
  deployedFprInterval,
} from '../../src/calibration/conformal';
import { mulberry32 } from '../../src/train/random';

test('the conformal rank is ⌈(n + 1)(1 − α)⌉: known answers, also where the product is an integer', () => {
  expect(conformalRank(19, 0.05)).toBe(19); // 20 × 0.95 = 19 exactly
  expect(conformalRank(99, 0.1)).toBe(90);
  expect(conformalRank(5000, 0.05)).toBe(4751); // 5001 × 0.95 = 4750.95
  expect(conformalRank(1500, 0.05)).toBe(1426);
  expect(conformalRank(10, 0.001)).toBe(11); // beyond the scores: nothing can be flagged
  expect(() => conformalRank(10, 0)).toThrow(/rate/);
  expect(() => conformalRank(0, 0.05)).toThrow(/clean scores/);
});

test('the threshold is that rank of the sorted scores, +∞ when the rate is not resolvable, NaN refused', () => {
  const scores = Array.from({ length: 99 }, (_, i) => 99 - i); // 99..1, unsorted order
  expect(conformalThreshold(scores, 0.1)).toBe(90); // 10 of 99 above it
  expect(conformalThreshold(scores, 0.005)).toBe(Infinity);
  expect(() => conformalThreshold([1, NaN, 2], 0.1)).toThrow(/NaN/);
});

test('on exchangeable draws, the rate delivered averages at most α and the interval covers it 95 % of the time', () => {
  const random = mulberry32(11);
  const n = 400;
  const alpha = 0.05;
  const interval = deployedFprInterval(n, alpha);
  let sum = 0;
  let covered = 0;
  const trials = 2000;
  for (let t = 0; t < trials; t++) {
    const scores = Array.from({ length: n }, random);
    // Uniform scores: the rate a threshold delivers on new draws is 1 − threshold, exactly.
    const delivered = 1 - conformalThreshold(scores, alpha);
    sum += delivered;
    if (delivered >= interval.low && delivered <= interval.high) covered++;
  }
  expect(sum / trials).toBeLessThanOrEqual(alpha + 0.002);
  expect(sum / trials).toBeCloseTo(interval.rate, 2);
  expect(covered / trials).toBeGreaterThan(0.93);
  expect(covered / trials).toBeLessThan(0.97);
});

test('Clopper–Pearson: exact endpoints at 0 and n, and a known interval', () => {
  const none = clopperPearson(0, 100);
  expect(none.low).toBe(0);
  expect(none.high).toBeCloseTo(1 - 0.025 ** (1 / 100), 10);
  const all = clopperPearson(100, 100);
  expect(all.high).toBe(1);
  expect(all.low).toBeCloseTo(0.025 ** (1 / 100), 10);
  // 249 of 5000: the Beta quantiles Beta(249, 4752) at 2.5 % and Beta(250, 4751) at 97.5 %.
  const mid = clopperPearson(249, 5000);
  expect(mid.rate).toBeCloseTo(0.0498, 6);
  expect(mid.low).toBeCloseTo(0.04393, 4);
  expect(mid.high).toBeCloseTo(0.05621, 4);
  expect(() => clopperPearson(3, 2)).toThrow(/hits/);
});
