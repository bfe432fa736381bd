/**
 * The combined verdict's "either one" term: chosen where the regression dilutes an attack that one
 * detector sees, left out where it gains nothing, the same score in tensors, and the rate on
 * new clean images still the one asked for (the thresholds are read on the combined score).
 */
import * as tf from '@tensorflow/tfjs';
import { conformalThreshold } from '../../src/calibration/conformal';
import { fitUnion, flaggedAt, UNION_MIN_GAIN, worstAttackFlaggedAt } from '../../src/calibration/verdictUnion';
import { combinedScore, combinedScoreTensor, fitCombined } from '../../src/detectors/combined';
import { mulberry32 } from '../../src/train/random';

/** Standard normal draws (Box–Muller) from a seeded generator. */
function normals(seed: number) {
  const random = mulberry32(seed);
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

const TARGET = 0.05;

/** Clean rows: three detectors of noise. Attack A: far out on detector a; attack B: moderately out on c only. */
function rows(seed: number, clean: number, attackA: number, attackB: number) {
  const n = normals(seed);
  return {
    clean: Array.from({ length: clean }, () => [n(), n(), n()]),
    adversarial: [
      ...Array.from({ length: attackA }, () => [5 + n(), n(), n()]),
      ...Array.from({ length: attackB }, () => [n(), n(), 2.8 + 0.5 * n()]),
    ],
  };
}

test('where a linear regression splits the difference between two attacks, a term of its own flags more of them', () => {
  // A linear sum of a and c cannot say "a far out, or c far out": it flags the middle ground.
  const fit = rows(1, 1000, 700, 300);
  const regression = fitCombined(['a', 'b', 'c'], fit.clean, fit.adversarial);
  const held = rows(2, 2000, 700, 300);
  const choice = fitUnion(regression, held.clean, held.adversarial, TARGET);
  expect(choice.terms.length).toBeGreaterThan(0);
  expect(choice.terms.map((t) => t.detector)).not.toContain('b'); // noise on both attacks
  expect(choice.tpr).toBeGreaterThanOrEqual(choice.regressionTpr + UNION_MIN_GAIN * choice.terms.length);
  expect(choice.state.union!.terms).toHaveLength(choice.terms.length);
  const shares = choice.terms.reduce((sum, t) => sum + t.share, 0);
  expect(shares).toBeLessThan(1);
  expect(choice.candidates.length).toBeGreaterThan(3);

  // On new rows: more attacks flagged, at the same rate on new clean rows.
  const fresh = rows(3, 4000, 700, 300);
  const tpr = (s: typeof regression) => flaggedAt(s, held.clean, fresh.adversarial, TARGET);
  expect(tpr(choice.state)).toBeGreaterThan(tpr(regression) + 0.05);
  const threshold = conformalThreshold(
    held.clean.map((r) => combinedScore(choice.state, r)),
    TARGET,
  );
  const rate = fresh.clean.filter((r) => combinedScore(choice.state, r) > threshold).length / fresh.clean.length;
  expect(rate).toBeGreaterThan(0.04);
  expect(rate).toBeLessThan(0.06);
});

test('the score is the larger of the regression and the term, and the tensor score agrees', () => {
  const fit = rows(4, 1000, 700, 300);
  const regression = fitCombined(['a', 'b', 'c'], fit.clean, fit.adversarial);
  const held = rows(5, 2000, 700, 300);
  const choice = fitUnion(regression, held.clean, held.adversarial, TARGET);
  const { level, terms } = choice.state.union!;
  const probe = [
    [0, 0, 0],
    [0, 0, 4],
    [6, 0, 0],
    [0.3, -1, 2.5],
  ];
  for (const r of probe) {
    const expected = Math.max(combinedScore(regression, r), ...terms.map((u) => level + (r[u.input] - u.at) / u.scale));
    expect(combinedScore(choice.state, r)).toBeCloseTo(expected, 10);
  }
  const t = combinedScoreTensor(
    choice.state,
    [0, 1, 2].map((j) => tf.tensor1d(probe.map((r) => r[j]))),
  );
  const v = t.dataSync();
  probe.forEach((r, i) => expect(v[i]).toBeCloseTo(combinedScore(choice.state, r), 3));
  t.dispose();
});

test('where the regression already sees every attack, no term is kept', () => {
  // Hidden units learn the same "either one" from data this clear (the terms are for when they do not).
  const fit = rows(6, 1000, 700, 300);
  const regression = fitCombined(['a', 'b', 'c'], fit.clean, fit.adversarial, { hidden: 8, seed: 1 });
  const held = rows(7, 2000, 700, 300);
  const choice = fitUnion(regression, held.clean, held.adversarial, TARGET);
  expect(choice.terms).toEqual([]);
  expect(choice.state.union).toBeUndefined();
  expect(choice.tpr).toBe(choice.regressionTpr);
});

test('a calibration state with terms keeps them, and a second fit replaces them instead of stacking', () => {
  const fit = rows(8, 1000, 700, 300);
  const regression = fitCombined(['a', 'b', 'c'], fit.clean, fit.adversarial);
  const held = rows(9, 2000, 700, 300);
  const once = fitUnion(regression, held.clean, held.adversarial, TARGET);
  const twice = fitUnion(once.state, held.clean, held.adversarial, TARGET);
  expect(twice.state.union!.terms).toHaveLength(once.terms.length);
  expect(twice.state).toEqual(once.state);
  expect(JSON.parse(JSON.stringify(once.state))).toEqual(once.state);
});

test('worstAttackFlaggedAt: the lowest share flagged among the attacks, at the threshold read on the clean rows', () => {
  const state = fitCombined(['a'], [[0], [1], [2], [3]], [[10], [11]]);
  const clean = Array.from({ length: 100 }, (_, i) => [i / 100]);
  // Attack 0: both far out; attack 1: one of two far out, the other as clean as can be.
  const adversarial = [[50], [60], [70], [0]];
  expect(worstAttackFlaggedAt(state, clean, adversarial, TARGET, [0, 0, 1, 1])).toBe(0.5);
  expect(worstAttackFlaggedAt(state, clean, adversarial, TARGET, [0, 0, 0, 1])).toBe(0);
  expect(flaggedAt(state, clean, adversarial, TARGET)).toBe(0.75);
});

test('with each row’s attack, a term is kept for the attack flagged least even where the pooled share barely moves', () => {
  // Attack B (seen by c alone) is 2 % of the rows: the regression follows attack A, a term for c
  // lifts B a lot and the pool a little.
  const fit = rows(11, 1000, 2940, 60);
  const regression = fitCombined(['a', 'b', 'c'], fit.clean, fit.adversarial);
  const held = rows(12, 2000, 2940, 60);
  const attackOf = held.adversarial.map((_, n) => (n < 2940 ? 0 : 1));
  const pooled = fitUnion(regression, held.clean, held.adversarial, TARGET);
  const worst = fitUnion(regression, held.clean, held.adversarial, TARGET, undefined, attackOf);
  expect(worst.terms.map((t) => t.detector)).toContain('c');
  expect(worst.tpr).toBe(worstAttackFlaggedAt(worst.state, held.clean, held.adversarial, TARGET, attackOf));
  expect(worst.tpr).toBeGreaterThanOrEqual(worst.regressionTpr + UNION_MIN_GAIN);
  // The attack flagged least gains more with the worst-attack choice than with the pooled one.
  const worstOf = (state: typeof regression) =>
    worstAttackFlaggedAt(state, held.clean, held.adversarial, TARGET, attackOf);
  expect(worstOf(worst.state)).toBeGreaterThan(worstOf(pooled.state));
});
