/** The research-claim measures on hand-made cases. */
import {
  classMeans,
  classUnits,
  layerPromotionSuppression,
  pearsonNoDc,
  promotionSuppression,
  promotionSuppressionType,
  radialLogProfile,
  spectrumClaim,
  spectrumSimilarity,
  trajectoryClaim,
} from '../../src/evaluation/analysis';
import { checkGoals } from '../../src/evaluation/report';
import type { EvaluationResult } from '../../src/evaluation/evaluate';

test('promotion–suppression: who moved the margin', () => {
  const clean = Float32Array.of(5, 0, 0);
  expect(promotionSuppression(clean, Float32Array.of(-1, 0.5, 0), 0, 1).type).toBe('suppression'); // drop 6, rise 0.5
  expect(promotionSuppression(clean, Float32Array.of(4.5, 6, 0), 0, 1).type).toBe('promotion'); // drop 0.5, rise 6
  const balanced = promotionSuppression(clean, Float32Array.of(2, 3, 0), 0, 1); // drop 3, rise 3
  expect(balanced).toEqual({ drop: 3, rise: 3, type: 'balanced' });
});

test('the share rule: drop⁺ / (drop⁺ + rise⁺) at 2/3 and 1/3 exactly, negative parts not counted', () => {
  expect(promotionSuppressionType(2, 1)).toBe('suppression');
  expect(promotionSuppressionType(1.9, 1)).toBe('balanced');
  expect(promotionSuppressionType(1, 2)).toBe('promotion');
  expect(promotionSuppressionType(1, 1.9)).toBe('balanced');
  expect(promotionSuppressionType(3, -5)).toBe('suppression'); // the target fell too: only the drop helped
  expect(promotionSuppressionType(-3, 0.1)).toBe('promotion');
  expect(promotionSuppressionType(0, 0)).toBe('balanced');
  expect(promotionSuppressionType(-1, -1)).toBe('balanced');
});

/**
 * Three classes over 40 units: class c's expectation is 1 on units 10c…10c+9 and 0 elsewhere, and
 * units 30…39 are 0.5 for every class (they tell no class apart). 5 % of 40 is 2 units a class.
 */
const MU = [0, 1, 2].map((c) =>
  Array.from({ length: 40 }, (_, j) => (j >= 30 ? 0.5 : Math.floor(j / 10) === c ? 1 : 0)),
);

test("a class's units are those where its expectation exceeds the other's most, at most 5 % of the layer", () => {
  expect(classUnits(MU, 0, 1)).toEqual([0, 1]);
  expect(classUnits(MU, 1, 0)).toEqual([10, 11]);
  expect(classUnits(MU, 0, 1, 0.25)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]); // only the 10 that exceed at all
  // A logits layer: each class's own logit, one unit (5 % of 10 rounds up to 1).
  const logits = [0, 1, 2].map((c) => [0, 1, 2].map((j) => (j === c ? 4 : -1)));
  expect(classUnits(logits, 2, 0)).toEqual([2]);
  // Two classes with the same expectation have no units to tell them apart.
  expect(classUnits([MU[0], MU[0]], 0, 1)).toEqual([]);
});

test('per layer: only the true units fall → suppression; only the target units rise → promotion; both → balanced', () => {
  const clean = Float32Array.from(MU[0]);
  const moved = (changes: Record<number, number>) => Float32Array.from(clean, (v, j) => v + (changes[j] ?? 0));
  const suppressed = layerPromotionSuppression('l', MU, clean, moved({ 0: -0.8, 1: -0.8, 30: 2 }), 0, 1);
  expect(suppressed).toMatchObject({ layer: 'l', type: 'suppression', trueUnits: [0, 1], adversarialUnits: [10, 11] });
  expect(suppressed.drop).toBeCloseTo(0.8, 6);
  expect(suppressed.rise).toBe(0); // unit 30 moved, but it belongs to no class
  const promoted = layerPromotionSuppression('l', MU, clean, moved({ 10: 1, 11: 0.6 }), 0, 1);
  expect(promoted).toMatchObject({ type: 'promotion', drop: 0 });
  expect(promoted.rise).toBeCloseTo(0.8, 6);
  const both = layerPromotionSuppression('l', MU, clean, moved({ 0: -0.5, 1: -0.5, 10: 0.5, 11: 0.5 }), 0, 1);
  expect(both.type).toBe('balanced');
  expect([both.drop, both.rise]).toEqual([0.5, 0.5]);
  // On logits, the layer rule is the logits' rule.
  const logitsMu = [0, 1, 2].map((c) => [0, 1, 2].map((j) => (j === c ? 4 : -1)));
  const [cleanLogits, advLogits] = [Float32Array.of(5, 0, 0), Float32Array.of(-1, 0.5, 0)];
  const { drop, rise, type } = promotionSuppression(cleanLogits, advLogits, 0, 1);
  expect(layerPromotionSuppression('logits', logitsMu, cleanLogits, advLogits, 0, 1)).toMatchObject({
    drop,
    rise,
    type,
  });
});

test('radial log-power profile: ring k holds the frequencies k/N, ring 0 the DC', () => {
  // An 8×8 log spectrum that is k where the radial frequency is about k/8 (|ky|, |kx| ≤ 4).
  const signed = (k: number) => (k <= 4 ? k : k - 8);
  const spectrum = Float32Array.from({ length: 64 }, (_, i) =>
    Math.floor(Math.hypot(signed(Math.floor(i / 8)), signed(i % 8))),
  );
  const profile = radialLogProfile(spectrum, 8, 8);
  expect(profile.length).toBe(6); // up to the corner, √2 · 4 ≈ 5.7 rings out
  expect(Array.from(profile)).toEqual([0, 1, 2, 3, 4, 5]);
});

test('spectrum similarity: the correlation with the target class, and its rank among the classes that have one', () => {
  const classes = [[9, 3, 2, 1], [0, 1, 2, 3], undefined, [5, 1, 3, 1]];
  expect(spectrumSimilarity([0, 1.1, 2, 2.9], classes, 1).rank).toBe(1);
  const towardsFirst = spectrumSimilarity([0, 1.1, 2, 2.9], classes, 0);
  expect(towardsFirst.similarity).toBeCloseTo(-1, 6);
  expect(towardsFirst.rank).toBe(3); // classes 1 and 3 correlate better; class 2 has no spectrum
});

test('Pearson correlation skips the DC bin', () => {
  expect(pearsonNoDc([100, 1, 2, 3], [-100, 2, 4, 6])).toBeCloseTo(1, 10);
  expect(pearsonNoDc([0, 1, 2, 3], [0, 3, 2, 1])).toBeCloseTo(-1, 10);
});

test('class means and the spectrum claim: a perturbation shaped like its target class correlates best with it', () => {
  const spectra = classMeans(Float32Array.of(1, 1, 3, 1, 1, 5, 0, 9, 1), 3, [0, 0, 1], 2);
  expect(Array.from(spectra[0])).toEqual([1, 1, 4]);
  expect(Array.from(spectra[1])).toEqual([0, 9, 1]);
  const classes = [Float32Array.of(0, 1, 2, 3), Float32Array.of(0, 3, 2, 1), Float32Array.of(0, 1, 3, 1)];
  const perturbations = Float32Array.of(0, 1.1, 2, 2.9, /* → class 1 */ 0, 3, 1.9, 1);
  const claim = spectrumClaim(perturbations, 4, [2, 2], [0, 1], classes);
  expect(claim.images).toBe(2);
  expect(claim.targetIsBest).toBe(1);
  expect(claim.targetCorrelation).toBeGreaterThan(0.99);
  expect(claim.otherCorrelation).toBeLessThan(0);
});

test('trajectory: distances relative to the clean scale, and the nearest expectation', () => {
  const state = {
    layers: ['a'],
    expectations: {
      a: [
        [0, 0],
        [10, 0],
      ],
    },
    scale: { a: [1, 2] },
  };
  const layer = trajectoryClaim(state, [{ a: Float32Array.of(0, 0) }], [{ a: Float32Array.of(8, 0) }], [0], [1])[0];
  expect(layer.cleanToOrigin).toBe(0);
  expect(layer.cleanToTarget).toBe(5);
  expect(layer.adversarialToOrigin).toBe(8);
  expect(layer.adversarialToTarget).toBe(1);
  expect(layer.nearestIsTarget).toBe(1);
});

test('goals say by how much they are missed', () => {
  const detectors = (combined: number, fs: number) => [
    { name: 'mahalanobis', auroc: 0.995, tprAtFpr5: 0.97, tprAtCalibratedThreshold: 0.96 },
    { name: 'combined', auroc: combined, tprAtFpr5: 0.96, tprAtCalibratedThreshold: 0.95 },
    { name: 'featureSqueezing', auroc: fs, tprAtFpr5: 0.5, tprAtCalibratedThreshold: 0.5 },
  ];
  const row = (name: string, method: string, combined: number, lowpass: number) =>
    ({
      name,
      method,
      adaptive: false,
      detectors: detectors(combined, 0.9),
      defenses: [{ name: 'lowpass', accuracy: lowpass, cleanAccuracy: 0.925 }],
    }) as never;
  const result = {
    cleanAccuracy: 0.93,
    attacks: [row('fgsm-0.1', 'fgsm', 0.995, 0.3), row('pgd-0.1', 'pgd', 0.97, 0.4)],
  } as unknown as EvaluationResult;
  const goals = checkGoals(result);
  expect(goals.find((g) => g.goal.startsWith('fgsm-0.1: combined AUROC'))!.met).toBe(true);
  const pgd = goals.find((g) => g.goal.startsWith('pgd-0.1: combined AUROC'))!;
  expect(pgd.met).toBe(false);
  expect(pgd.shortfall).toBe('0.020 short');
  expect(goals.find((g) => g.goal.startsWith('low-pass accuracy'))!.shortfall).toBe('10.0 % short');
  expect(goals.find((g) => g.goal.startsWith('low-pass clean-accuracy cost'))!.met).toBe(true);
});
