/**
 * Hardening the verdict (src/calibration/hardening.ts): the weights it refits with behave as weights,
 * and a hardening round on the bundled model attacks images end to end against the verdict, adds
 * what it misclassified, refits, and records what it did, with the thresholds still read on the
 * combined score the file ships.
 */
import type { Calibration } from '../../src/calibration/calibrationFile';
import { conformalThreshold } from '../../src/calibration/conformal';
import { HardeningSummary } from '../../src/calibration/hardening';
import { flaggedAt } from '../../src/calibration/verdictUnion';
import { combinedScore, fitCombined } from '../../src/detectors/combined';
import { COMBINED } from '../../src/detectors/registry';
import { initBackend } from '../../src/engine/backends';
import { InferenceModel } from '../../src/engine/model';
import { Screener } from '../../src/screening/screener';
import { mulberry32 } from '../../src/train/random';
import { smallCalibration } from '../helpers/calibration';
import { BUNDLED_MODEL_DIR } from '../helpers/fixtures';

function rows(seed: number, count: number, shift: number): number[][] {
  const random = mulberry32(seed);
  return Array.from({ length: count }, () => [random() + shift, random(), random() * 2]);
}

describe('adversarial row weights', () => {
  const clean = rows(1, 200, 0);
  const adversarial = [...rows(2, 80, 0.8), ...rows(3, 20, 0.3)];
  const names = ['a', 'b', 'c'];

  test.each([0, 4])('equal weights are no weights (%i hidden units)', (hidden) => {
    const plain = fitCombined(names, clean, adversarial, { hidden, seed: 5 });
    const equal = fitCombined(names, clean, adversarial, {
      hidden,
      seed: 5,
      adversarialWeights: adversarial.map(() => 3),
    });
    const probe = rows(9, 50, 0.4);
    for (const r of probe) expect(combinedScore(equal, r)).toBeCloseTo(combinedScore(plain, r), 6);
  });

  test('a zero weight drops the row; a heavier group pulls the fit towards itself', () => {
    const dropped = fitCombined(names, clean, adversarial.slice(0, 80));
    const zero = fitCombined(names, clean, adversarial, {
      adversarialWeights: adversarial.map((_, k) => (k < 80 ? 1 : 0)),
    });
    expect(zero.weights.map((w) => w.toFixed(6))).toEqual(dropped.weights.map((w) => w.toFixed(6)));
    // The weak attack (shift 0.3) weighs as much as the strong one: more of it flagged at 5 %.
    const heavy = fitCombined(names, clean, adversarial, {
      adversarialWeights: adversarial.map((_, k) => (k < 80 ? 1 : 4)),
    });
    const weak = rows(4, 400, 0.3);
    expect(flaggedAt(heavy, clean, weak, 0.05)).toBeGreaterThanOrEqual(flaggedAt(dropped, clean, weak, 0.05));
  });

  test('weights of the wrong length, negative or all zero are refused', () => {
    expect(() => fitCombined(names, clean, adversarial, { adversarialWeights: [1, 2] })).toThrow(/100 finite weights/);
    const negative = adversarial.map((_, k) => (k ? 1 : -1));
    expect(() => fitCombined(names, clean, adversarial, { adversarialWeights: negative })).toThrow(/weights ≥ 0/);
    expect(() => fitCombined(names, clean, adversarial, { adversarialWeights: adversarial.map(() => 0) })).toThrow(
      /positive total/,
    );
  });

  test('a weighted share of flagged rows', () => {
    const state = fitCombined(names, clean, adversarial);
    const threshold = conformalThreshold(
      clean.map((r) => combinedScore(state, r)),
      0.05,
    );
    const flagged = adversarial.map((r) => combinedScore(state, r) > threshold);
    const weights = adversarial.map((_, k) => (k % 2 ? 3 : 1));
    const expected = flagged.reduce((s, f, k) => s + (f ? weights[k] : 0), 0) / weights.reduce((a, b) => a + b, 0);
    expect(flaggedAt(state, clean, adversarial, 0.05, weights)).toBeCloseTo(expected, 12);
  });
});

describe('a hardening round on the bundled model', () => {
  let model: InferenceModel;
  let plain: Calibration;
  let hardened: Calibration;
  const settings = { rounds: 2, images: 24, steps: 8, epsilons: [0.1, 0.2] };

  beforeAll(async () => {
    await initBackend('wasm');
    model = await InferenceModel.load(BUNDLED_MODEL_DIR);
    plain = await smallCalibration(model);
    hardened = await smallCalibration(model, { hardening: settings });
  }, 240_000);
  afterAll(() => model.dispose());

  test('records each round: images attacked, misclassified, and how many got through before and after the refit', () => {
    const h = hardened.summary.hardening as HardeningSummary;
    expect(h.settings).toEqual(settings);
    expect(h.rounds).toHaveLength(2);
    for (const r of h.rounds) {
      expect(r.attacked).toBeLessThanOrEqual(24);
      expect(r.attacked).toBeGreaterThan(12); // the bundled model classifies most training images right
      // ε 0.2 against a model trained without attacks: most of them misclassified.
      expect(r.misclassified).toBeGreaterThan(r.attacked / 2);
      for (const v of [r.evadedBefore, r.evadedAfter]) {
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(1);
      }
    }
    // The first round attacked the unhardened verdict: with few steps on a small calibration some get through.
    expect(h.rounds[0].evadedBefore).toBeGreaterThan(0);
    expect(h.rounds[0].evadedAfter).toBeLessThan(h.rounds[0].evadedBefore);
  });

  test('only the verdict moves: the detectors and the low-pass radius are those of the same calibration without hardening', () => {
    expect(hardened.detectors).toEqual(plain.detectors);
    expect(hardened.lowPass).toEqual(plain.lowPass);
    expect(hardened.combined.weights).not.toEqual(plain.combined.weights);
    expect(plain.summary.hardening).toBeUndefined();
  });

  test('the shipped thresholds are read on the hardened score: the screener flags the target share of clean hold-out scores', () => {
    const screener = new Screener(hardened, model.metadata.labels);
    const sorted = hardened.holdoutScores[COMBINED];
    for (let i = 1; i < sorted.length; i++) expect(sorted[i]).toBeGreaterThanOrEqual(sorted[i - 1]);
    const t = screener.thresholds(0.05);
    const over = sorted.filter((s) => s > t[COMBINED]).length / sorted.length;
    expect(over).toBeLessThanOrEqual(0.05);
    expect(over).toBeGreaterThan(0.01);
  });
});
