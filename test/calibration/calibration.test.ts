/** Calibration: what it fits, the file round trip, and the files it refuses. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Calibration, CalibrationError, loadCalibration, saveCalibration } from '../../src/calibration/calibrationFile';
import { initBackend } from '../../src/engine/backends';
import { InferenceModel } from '../../src/engine/model';
import { Screener } from '../../src/screening/screener';
import { smallCalibration } from '../helpers/calibration';
import { BUNDLED_MODEL_DIR } from '../helpers/fixtures';

let model: InferenceModel;
let calibration: Calibration;
let dir: string;

beforeAll(async () => {
  await initBackend('wasm');
  model = await InferenceModel.load(BUNDLED_MODEL_DIR);
  calibration = await smallCalibration(model);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-cal-'));
});
afterAll(() => {
  model.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('calibration fits every detector, a low-pass radius within its accuracy budget, and sorted hold-out scores', () => {
  const screener = new Screener(calibration, model.metadata.labels);
  expect(Object.keys(calibration.detectors)).toEqual(screener.detectors.map((d) => d.name));
  expect(calibration.model.sha256).toBe(model.stored.sha256);
  expect(calibration.data.source).toMatch(/train/);
  const lp = calibration.lowPass;
  expect(lp.candidates.length).toBeGreaterThan(4);
  if (lp.candidates.some((c) => lp.cleanAccuracy - c.filteredAccuracy <= lp.maxCost))
    expect(lp.cleanAccuracy - lp.filteredAccuracy).toBeLessThanOrEqual(lp.maxCost + 1e-9);
  for (const name of screener.detectorNames) {
    const s = calibration.holdoutScores[name];
    expect(s.length).toBe(calibration.data.thresholdImages);
    for (let i = 1; i < s.length; i++) expect(s[i]).toBeGreaterThanOrEqual(s[i - 1]);
  }
  // A lower target false-positive rate means higher thresholds.
  const loose = screener.thresholds(0.2);
  const strict = screener.thresholds(0.01);
  for (const name of screener.detectorNames) expect(strict[name]).toBeGreaterThanOrEqual(loose[name]);
  expect(() => screener.thresholds(1.5)).toThrow(/targetFpr/);
});

test('a saved calibration loads back the same', () => {
  const file = path.join(dir, 'calibration.json');
  saveCalibration(file, calibration);
  expect(loadCalibration(file, model.stored.sha256)).toEqual(JSON.parse(JSON.stringify(calibration)));
});

test('a calibration of another model, a missing, corrupt or old file is refused with a code and the file name', () => {
  const file = path.join(dir, 'calibration.json');
  saveCalibration(file, calibration);
  const expectError = (f: string, sha: string, code: string, message: RegExp) => {
    try {
      loadCalibration(f, sha);
      throw new Error('expected a CalibrationError');
    } catch (err) {
      expect(err).toBeInstanceOf(CalibrationError);
      expect((err as CalibrationError).code).toBe(code);
      expect((err as Error).message).toContain(f);
      expect((err as Error).message).toMatch(message);
    }
  };
  expectError(file, 'f'.repeat(64), 'CALIBRATION_MISMATCH', /belongs to model fashion-cnn .*calibrate again/);
  expectError(path.join(dir, 'none.json'), model.stored.sha256, 'CALIBRATION_MISSING', /advsieve calibrate/);
  const corrupt = path.join(dir, 'corrupt.json');
  fs.writeFileSync(corrupt, '{"schemaVersion": 1, "model": ');
  expectError(corrupt, model.stored.sha256, 'CALIBRATION_CORRUPT', /not valid JSON/);
  const old = path.join(dir, 'old.json');
  fs.writeFileSync(old, JSON.stringify({ ...calibration, schemaVersion: 0 }));
  expectError(old, model.stored.sha256, 'CALIBRATION_CORRUPT', /schema version 0/);
});

test('the bundled calibration belongs to the bundled model', () => {
  const bundled = loadCalibration(path.join(BUNDLED_MODEL_DIR, 'calibration.json'), model.stored.sha256);
  expect(bundled.data.source).toBe('fashion-mnist train');
  expect(bundled.data.fit).toBeGreaterThanOrEqual(5000);
});
