/**
 * Class spectra with known answers: a class of images made only of one frequency has its mean
 * spectrum peaked there, in its radial profile and in its (pooled) map. A calibration file written
 * before class spectra loads as before, and `--add-class-spectra` adds them only for the fit set
 * the calibration was made on.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { addClassSpectra } from '../../src/calibration/calibrate';
import { calibrationPath, loadCalibration, readCalibration } from '../../src/calibration/calibrationFile';
import { classSpectra, classSpectrumProblem, poolSpectrum } from '../../src/calibration/classSpectra';
import { initBackend } from '../../src/engine/backends';
import { InferenceModel } from '../../src/engine/model';
import { BUNDLED_MODEL_DIR } from '../helpers/fixtures';
import { BAND_CALIBRATION, BAND_MODEL_ID, bandImages, makeBandModel } from '../helpers/bandModel';

let dir: string;
beforeAll(async () => {
  await initBackend('wasm');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-spectra-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** `count` side×side images of a cosine of `cycles` per image along x (class 0) or y (class 1), random phase and contrast. */
function stripes(side: number, count: number, cycles: readonly [number, number]) {
  const pixels = new Float32Array(count * side * side);
  const labels = Int32Array.from({ length: count }, (_, i) => i % 2);
  labels.forEach((label, n) => {
    const [phase, contrast] = [n * 0.7, 0.2 + (0.2 * ((n * 7) % 5)) / 5];
    for (let y = 0; y < side; y++)
      for (let x = 0; x < side; x++) {
        const t = ((label === 0 ? x : y) * cycles[label]) / side;
        pixels[(n * side + y) * side + x] = 0.5 + contrast * Math.cos(2 * Math.PI * t + phase);
      }
  });
  return { pixels, labels };
}

/** Index of the largest value, index 0 (the DC) left out. */
const peak = (values: readonly number[]) => values.indexOf(Math.max(...values.slice(1)));

test('a class made of one frequency has its mean spectrum peaked there; a class without images has none', async () => {
  const { pixels, labels } = stripes(16, 20, [3, 6]);
  const s = await classSpectra(pixels, labels, 20, [16, 16, 1], 3);
  expect(s).toMatchObject({ height: 16, width: 16, images: [10, 10, 0], mapHeight: 16, mapWidth: 16 });
  expect(peak(s.radial[0])).toBe(3);
  expect(peak(s.radial[1])).toBe(6);
  // The map, DC at 0: class 0 at (0, ±3), class 1 at (±6, 0).
  expect([3, 13]).toContain(peak(s.maps[0]));
  expect([6 * 16, 10 * 16]).toContain(peak(s.maps[1]));
  expect(s.radial[2]).toEqual([]);
  expect(classSpectrumProblem(s, 0, [16, 16, 1], s.radial[0].length)).toBeUndefined();
  expect(classSpectrumProblem(s, 2, [16, 16, 1], s.radial[0].length)).toMatch(/no clean images of class 2/);
  expect(classSpectrumProblem(s, 0, [28, 28, 1], s.radial[0].length)).toMatch(/16×16 inputs, the model takes 28×28/);
  const damaged = { ...s, radial: [[...s.radial[0].slice(1), NaN], ...s.radial.slice(1)] };
  expect(classSpectrumProblem(damaged, 0, [16, 16, 1], s.radial[0].length)).toMatch(/damaged/);
});

test('a large input keeps its full radial profile and a map pooled to 32×32 bins of frequency', async () => {
  const { pixels, labels } = stripes(64, 4, [20, 9]);
  const s = await classSpectra(pixels, labels, 4, [64, 64, 1], 2);
  expect([s.mapHeight, s.mapWidth]).toEqual([32, 32]);
  expect(peak(s.radial[0])).toBe(20);
  // Frequency 20/64 lies 20 · 32/64 = 10 pooled bins from the DC, either side.
  expect([10, 22]).toContain(peak(s.maps[0]));
  // Pooling keeps the DC at 0 and averages: a constant spectrum stays constant.
  const pooled = poolSpectrum(new Float32Array(64 * 64).fill(2), 64, 64, 32, 32);
  expect(new Set(pooled)).toEqual(new Set([2]));
});

test('the bundled calibration has every class spectrum; without them, it loads as before', () => {
  const file = path.join(BUNDLED_MODEL_DIR, 'calibration.json');
  const json = JSON.parse(fs.readFileSync(file, 'utf8')) as { model: { sha256: string }; classSpectra?: unknown };
  const bundled = loadCalibration(file, json.model.sha256);
  const rings = bundled.classSpectra!.radial[0].length;
  expect(rings).toBe(20); // 28×28: rings of 1/28 out to the corner, 0.707
  for (let k = 0; k < 10; k++)
    expect(classSpectrumProblem(bundled.classSpectra, k, [28, 28, 1], rings)).toBeUndefined();
  delete json.classSpectra;
  const old = path.join(dir, 'old.json');
  fs.writeFileSync(old, JSON.stringify(json));
  const { calibration } = readCalibration(old, json.model.sha256);
  expect(calibration.classSpectra).toBeUndefined();
  expect(calibration.detectors).toEqual(bundled.detectors);
  expect(classSpectrumProblem(calibration.classSpectra, 0, [28, 28, 1], rings)).toMatch(
    /stores no class spectra.*--add-class-spectra/,
  );
});

test('--add-class-spectra: the same spectra as calibrate gave, nothing else changed; another split is refused', async () => {
  const modelDir = path.join(dir, BAND_MODEL_ID);
  const sha256 = await makeBandModel(modelDir);
  const model = await InferenceModel.load(modelDir);
  const calibrated = loadCalibration(calibrationPath(modelDir), sha256);
  const { classSpectra: made, ...without } = calibrated;
  const added = await addClassSpectra(model, bandImages(), BAND_CALIBRATION, without);
  expect(added.expectationError).toBeLessThan(1e-6);
  expect(added.calibration).toEqual({ ...without, classSpectra: made });
  await expect(addClassSpectra(model, bandImages(), { ...BAND_CALIBRATION, seed: 9 }, without)).rejects.toThrow(
    /do not give the calibration's fit set/,
  );
  await expect(addClassSpectra(model, bandImages(), { ...BAND_CALIBRATION, fit: 100 }, without)).rejects.toThrow(
    /made on 120 fit and 60 hold-out images/,
  );
  model.dispose();
}, 120_000);
