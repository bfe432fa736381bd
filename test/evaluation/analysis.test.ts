/** The research-claim measures on hand-made cases. */
import {
  classMeans,
  pearsonNoDc,
  promotionSuppression,
  spectrumClaim,
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
