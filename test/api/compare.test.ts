/**
 * `compare` with known answers. On the band model (test/helpers/bandModel.ts) a logit and its
 * hidden unit move by exactly BAND_GAIN times the band's change, so pairs that only darken the
 * clean class's band are suppression-dominated, pairs that only brighten the new class's band
 * promotion-dominated, and pairs that do both equally balanced — on the logits and at the layers
 * 'hidden' and 'logits'. The class spectrum comes from the band model's calibration; the default
 * model is served here with its calibration stripped of class spectra, as a file written before
 * they were recorded: it still loads, and `compare` says why it has none.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend } from '../../src/engine/backends';
import { encodePng16 } from '../../src/images/encode';
import { BUNDLED_MODEL_DIR } from '../helpers/fixtures';
import { BAND_GAIN, BAND_MODEL_ID, bandImage, makeBandModel } from '../helpers/bandModel';
import { fixtureFiles, gql, startServer, TestServer } from './helpers';

let dir: string;
let server: TestServer;

beforeAll(async () => {
  await initBackend('wasm');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-compare-'));
  await makeBandModel(path.join(dir, BAND_MODEL_ID));
  const old = JSON.parse(fs.readFileSync(path.join(BUNDLED_MODEL_DIR, 'calibration.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  delete old.classSpectra;
  fs.writeFileSync(path.join(dir, 'old-calibration.json'), JSON.stringify(old));
  server = await startServer({
    ADVSIEVE_MODELS: path.join(dir, BAND_MODEL_ID),
    ADVSIEVE_CALIBRATION: path.join(dir, 'old-calibration.json'),
    ADVSIEVE_WORKERS: '1',
  });
}, 240_000);

afterAll(async () => {
  await server?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const QUERY = `query ($c: ImageInput!, $s: ImageInput!, $m: String) {
  compare(clean: $c, suspect: $s, model: $m) {
    clean { prediction { classIndex } }
    suspect { prediction { classIndex } }
    perturbationSpectrum { radial { from } radialLogPower }
    classSpectrum { classIndex label available reason images radialLogPower similarity rank classesRanked logMagnitudePng }
    promotionSuppression { type originClass targetClass drop rise layers { layer type drop rise trueUnits adversarialUnits } }
  }
}`;

interface Typing {
  type: string;
  drop: number;
  rise: number;
}
interface Compared {
  clean: { prediction: { classIndex: number } };
  suspect: { prediction: { classIndex: number } };
  perturbationSpectrum: { radial: unknown[]; radialLogPower: number[] };
  classSpectrum: {
    classIndex: number;
    label: string;
    available: boolean;
    reason: string | null;
    images: number | null;
    radialLogPower: number[] | null;
    similarity: number | null;
    rank: number | null;
    classesRanked: number | null;
    logMagnitudePng: string | null;
  };
  promotionSuppression:
    | (Typing & {
        originClass: number;
        targetClass: number;
        layers: Array<Typing & { layer: string; trueUnits: number[]; adversarialUnits: number[] }>;
      })
    | null;
}

async function compareBands(clean: number[], suspect: number[]): Promise<Compared> {
  const png = async (bands: number[]) => ({
    base64: (await encodePng16(bandImage(bands), [6, 6, 1])).toString('base64'),
  });
  const r = await gql<{ compare: Compared }>(server, QUERY, {
    c: await png(clean),
    s: await png(suspect),
    m: BAND_MODEL_ID,
  });
  expect(r.body.errors).toBeUndefined();
  return r.body.data!.compare;
}

const CLEAN = [0.8, 0.4, 0.1];

test.each([
  // Only the clean class's band darkens: its logit drops by 0.5 × gain, nothing rises.
  ['suppression', [0.3, 0.4, 0.1], 0.5, 0],
  // Only the new class's band brightens.
  ['promotion', [0.8, 0.9, 0.1], 0, 0.5],
  // Both, by the same amount.
  ['balanced', [0.55, 0.65, 0.1], 0.25, 0.25],
])('a pair built to be %s-dominated is typed so, on the logits and per layer', async (type, suspect, drop, rise) => {
  const c = await compareBands(CLEAN, suspect as number[]);
  expect(c.clean.prediction.classIndex).toBe(0);
  expect(c.suspect.prediction.classIndex).toBe(1);
  const ps = c.promotionSuppression!;
  expect(ps).toMatchObject({ type, originClass: 0, targetClass: 1 });
  expect(ps.drop).toBeCloseTo((drop as number) * BAND_GAIN, 3);
  expect(ps.rise).toBeCloseTo((rise as number) * BAND_GAIN, 3);
  expect(ps.layers.map((l) => l.layer)).toEqual(['feat', 'hidden', 'logits']);
  for (const layer of ps.layers.filter((l) => l.layer !== 'feat')) {
    // The calibration's class expectations pick band 0's unit for the clean class, band 1's for the new one.
    expect(layer).toMatchObject({ type, trueUnits: [0], adversarialUnits: [1] });
    expect(layer.drop).toBeCloseTo(ps.drop, 3);
    expect(layer.rise).toBeCloseTo(ps.rise, 3);
  }
  // 'feat' is the whole image's mean and spread: typed by the same rule, its answer not built in.
  expect(['suppression', 'promotion', 'balanced']).toContain(ps.layers[0].type);
  // Against the new class's mean spectrum from the calibration.
  const s = c.classSpectrum;
  expect(s).toMatchObject({ classIndex: 1, label: 'middle', available: true, reason: null, classesRanked: 3 });
  expect(s.images).toBeGreaterThan(0);
  expect(s.radialLogPower!.length).toBe(c.perturbationSpectrum.radialLogPower.length);
  expect(s.radialLogPower!.length).toBe(c.perturbationSpectrum.radial.length);
  expect(s.similarity!).toBeGreaterThanOrEqual(-1);
  expect(s.similarity!).toBeLessThanOrEqual(1);
  expect(s.rank!).toBeGreaterThanOrEqual(1);
  expect(s.rank!).toBeLessThanOrEqual(3);
  expect(Buffer.from(s.logMagnitudePng!, 'base64').subarray(1, 4).toString()).toBe('PNG');
});

test('a pair whose prediction does not change has no typing', async () => {
  const c = await compareBands(CLEAN, [0.7, 0.4, 0.1]);
  expect(c.suspect.prediction.classIndex).toBe(0);
  expect(c.promotionSuppression).toBeNull();
});

test('a calibration written before class spectra still serves; compare says why it has none', async () => {
  const image = { base64: fs.readFileSync(fixtureFiles()[0]).toString('base64') };
  const r = await gql<{ compare: Compared }>(server, QUERY, { c: image, s: image, m: null });
  expect(r.body.errors).toBeUndefined();
  const s = r.body.data!.compare.classSpectrum;
  expect(s).toMatchObject({ available: false, similarity: null, radialLogPower: null, logMagnitudePng: null });
  expect(s.reason).toMatch(/stores no class spectra.*--add-class-spectra/);
});
