/**
 * Thresholds read on unseen images: the test split's two parts, re-reading a calibration's
 * thresholds (nothing fitted changes), calibrate's option, and the false-positive rates evaluate
 * reports on the other part.
 */
import { calibrate } from '../../src/calibration/calibrate';
import type { Calibration } from '../../src/calibration/calibrationFile';
import { conformalThreshold } from '../../src/calibration/conformal';
import { readThresholds } from '../../src/calibration/thresholds';
import { loadFashionMnist } from '../../src/data/fashionMnist';
import { DEFAULT_THRESHOLD_PART, testSplitParts } from '../../src/data/testSplitParts';
import { COMBINED } from '../../src/detectors/registry';
import { initBackend } from '../../src/engine/backends';
import { InferenceModel } from '../../src/engine/model';
import { cleanFalsePositives } from '../../src/evaluation/falsePositives';
import { Screener } from '../../src/screening/screener';
import { smallCalibration } from '../helpers/calibration';
import { BUNDLED_MODEL_DIR } from '../helpers/fixtures';

let model: InferenceModel;
let calibration: Calibration;
const test300 = () => {
  const t = loadFashionMnist('test', undefined, 300);
  return { first: t.pixels.subarray(0, 150 * 784), second: t.pixels.subarray(150 * 784, 300 * 784) };
};

beforeAll(async () => {
  await initBackend('wasm');
  model = await InferenceModel.load(BUNDLED_MODEL_DIR);
  calibration = await smallCalibration(model);
});
afterAll(() => model.dispose());

test('the test split splits into two disjoint seeded parts that cover it', () => {
  const a = testSplitParts(DEFAULT_THRESHOLD_PART);
  const b = testSplitParts(DEFAULT_THRESHOLD_PART);
  expect(a.threshold).toEqual(b.threshold);
  expect(a.threshold.length).toBe(5000);
  expect(a.evaluation.length).toBe(5000);
  const seen = new Set([...a.threshold, ...a.evaluation]);
  expect(seen.size).toBe(10000);
  expect(testSplitParts({ ...DEFAULT_THRESHOLD_PART, seed: 1 }).threshold).not.toEqual(a.threshold);
  expect(() => testSplitParts({ seed: 1, count: 10000, of: 10000 })).toThrow(/threshold part/);
});

test('re-reading thresholds replaces the clean scores and the record, and nothing fitted', async () => {
  const { first } = test300();
  const part = { seed: 5, count: 150, of: 300 };
  const updated = await readThresholds(model, calibration, {
    pixels: first,
    count: 150,
    source: 'unit',
    testPart: part,
  });
  expect(updated.detectors).toBe(calibration.detectors);
  expect(updated.combined).toBe(calibration.combined);
  expect(updated.lowPass).toBe(calibration.lowPass);
  expect(updated.data.thresholdImages).toBe(150);
  expect(updated.data.thresholds).toMatchObject({ source: 'unit', images: 150, testPart: part });
  const screener = new Screener(updated, model.metadata.labels);
  for (const name of screener.detectorNames) {
    const s = updated.holdoutScores[name];
    expect(s).toHaveLength(150);
    for (let i = 1; i < s.length; i++) expect(s[i]).toBeGreaterThanOrEqual(s[i - 1]);
    // The screener's threshold is the conformal one over these scores.
    expect(screener.thresholds(0.1)[name]).toBe(conformalThreshold(s, 0.1));
  }
  // The threshold images' own rate at the threshold is at most the target.
  const own = updated.holdoutScores[COMBINED].filter((x) => x > screener.thresholds(0.1)[COMBINED]).length;
  expect(own / 150).toBeLessThanOrEqual(0.1);
  await expect(readThresholds(model, calibration, { pixels: first, count: 10, source: 'few' })).rejects.toThrow(
    /at least 20/,
  );
});

test('calibrate reads the thresholds on the unseen images it is given', async () => {
  const train = loadFashionMnist('train', undefined, 600);
  const { first } = test300();
  const unseen = await calibrate(
    model,
    { pixels: train.pixels, labels: Int32Array.from(train.labels), count: train.count, source: 'unit train' },
    {
      fit: 400,
      holdout: 140,
      attacked: 60,
      seed: 3,
      targetFpr: 0.05,
      maxAccuracyCost: 0.01,
      thresholdImages: { pixels: first, count: 150, source: 'unit test' },
    },
    model.stored.sha256,
  );
  expect(unseen.data.thresholds?.source).toBe('unit test');
  expect(unseen.holdoutScores[COMBINED]).toHaveLength(150);
  expect((unseen.summary.stageSeconds as Record<string, number>).thresholds).toBeGreaterThanOrEqual(0);
  expect(calibration.data.thresholds).toBeUndefined();
});

test('the false-positive report counts flags on the other images, with intervals and the cross-fit', async () => {
  const { first, second } = test300();
  const updated = await readThresholds(model, calibration, { pixels: first, count: 150, source: 'part A' });
  const screener = new Screener(updated, model.metadata.labels);
  const report = await cleanFalsePositives(
    model,
    screener,
    { pixels: second, count: 150, source: 'part B' },
    [0.05, 0.2],
  );
  expect(report.rows).toHaveLength(2 * screener.detectorNames.length);
  // Scored by hand: the same counts.
  const reference = new Screener(updated, model.metadata.labels);
  const { runInBatches } = await import('../../src/screening/inProcess');
  const outs = await runInBatches(model, second, 150, reference.extras);
  const scores = outs.map((o) => reference.scores(reference.features(o)));
  for (const row of report.rows) {
    const k = reference.detectorNames.indexOf(row.detector);
    const t = reference.thresholds(row.target)[row.detector];
    expect(row.threshold).toBe(t);
    expect(row.flagged).toBe(scores.filter((s) => s[k] > t).length);
    expect(row.measured.low).toBeLessThanOrEqual(row.measured.rate);
    expect(row.measured.high).toBeGreaterThanOrEqual(row.measured.rate);
    expect(row.crossFitted!.images).toBe(300);
    expect(row.crossFitted!.flagged).toBeGreaterThanOrEqual(row.flagged);
    expect(row.promised.rate).toBeLessThanOrEqual(row.target);
  }
  // A looser target flags at least as many.
  const at = (target: number) => report.rows.find((r) => r.target === target && r.detector === COMBINED)!.flagged;
  expect(at(0.2)).toBeGreaterThanOrEqual(at(0.05));
  // Thresholds read on training images cannot be cross-fitted against test images.
  const training = await cleanFalsePositives(
    model,
    new Screener(calibration, model.metadata.labels),
    { pixels: second, count: 150, source: 'B' },
    [0.05],
  );
  expect(training.rows.every((r) => r.crossFitted === undefined)).toBe(true);
  expect(training.thresholdSource).toMatch(/hold-out/);
});
