/**
 * The causes study's quick mode end to end: tiny sets, one epoch, every variant on one reference
 * geometry and Fashion-MNIST, the baseline on a second geometry. Its figures mean nothing; what is
 * asserted is what must hold of any run — the report's structure, every figure in range and
 * computed, success 0 at budget 0, success within budget non-decreasing — and that a second run
 * loads the models from the cache.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DEFAULT_FASHION_MNIST_DIR } from '../../src/data/fashionMnist';
import { initBackend } from '../../src/engine/backends';
import { CausesResult, QUICK_CAUSES_SETTINGS, runCausesStudy } from '../../src/study/causes';
import { writeCausesReport } from '../../src/study/causesReport';
import { STUDY_DATASETS, STUDY_VARIANTS } from '../../src/study/variants';

const DATA = process.env.FASHION_MNIST_DIR ?? DEFAULT_FASHION_MNIST_DIR;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-causes-'));
const datasets = STUDY_DATASETS.filter((d) => ['fashion', 'ref-overlap-d10'].includes(d.id));
let result: CausesResult;
let files: string[];

const inUnit = (x: number) => x >= 0 && x <= 1;

beforeAll(async () => {
  await initBackend('wasm');
  result = await runCausesStudy({
    settings: QUICK_CAUSES_SETTINGS,
    cacheDir: path.join(tmp, 'cache'),
    dataDir: DATA,
    datasets,
  });
  files = await writeCausesReport(result, path.join(tmp, 'reports'), {
    command: 'npx advsieve study causes --quick',
    date: '2026-12-03',
    wallSeconds: result.seconds,
  });
}, 240_000);

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('every variant runs on the data sets that list it, and the report names each', () => {
  const expected = datasets.flatMap((d) =>
    STUDY_VARIANTS.filter((v) => d.variants === '*' || d.variants.includes(v.id)).map((v) => `${d.id} × ${v.id}`),
  );
  expect(result.runs.map((r) => `${r.dataset} × ${r.variant}`)).toEqual(expected);
  const md = fs.readFileSync(path.join(tmp, 'reports', 'causes.md'), 'utf8');
  for (const name of expected) expect(md).toContain(name);
  for (const v of STUDY_VARIANTS) expect(md).toContain(`× ${v.id}`);
  for (const claim of ['linearity', 'one-sum', 'geometry', 'density', 'adversarial-training'])
    expect(md).toMatch(
      new RegExp(`### ${claim}: \\*\\*(supported|partly supported|not supported|contradicted|not measured)\\*\\*`),
    );
  expect(md).toContain('## Summary per model');
  const json = JSON.parse(fs.readFileSync(path.join(tmp, 'reports', 'causes.json'), 'utf8')) as CausesResult;
  expect(json.runs).toHaveLength(expected.length);
  expect(json.claims.map((c) => c.id)).toEqual(result.claims.map((c) => c.id));
  // The per-image confidences stay out of the JSON.
  expect(JSON.stringify(json)).not.toContain('"confidences"');
  const pngs = files.filter((f) => f.endsWith('.png'));
  expect(pngs.length).toBeGreaterThanOrEqual(4);
  for (const f of pngs) expect(fs.readFileSync(f).subarray(1, 4).toString()).toBe('PNG');
});

test('figures are in range and computed', () => {
  for (const r of result.runs) {
    expect(inUnit(r.cleanAccuracy)).toBe(true);
    expect(inUnit(r.cleanConfidence)).toBe(true);
    expect(r.attacks.map((a) => a.attack)).toEqual(['fgsm', 'pgd', 'cw']);
    for (const a of r.attacks) {
      expect(a.images).toBeGreaterThan(0);
      expect(a.rows[0].epsilon).toBe(0);
      // Budget 0: the images are the clean ones the model classifies right.
      expect(a.rows[0].successRate).toBe(0);
      for (const row of a.rows) {
        expect(inUnit(row.successRate)).toBe(true);
        expect(row.successWithinBudget).toBeGreaterThanOrEqual(row.successRate);
        expect(row.successful).toBe(row.confidences.length);
        if (row.meanConfidence !== null) expect(inUnit(row.meanConfidence)).toBe(true);
        else expect(row.successful).toBe(0);
        for (const c of row.confidences) expect(inUnit(c)).toBe(true);
      }
      for (let k = 1; k < a.rows.length; k++)
        expect(a.rows[k].successWithinBudget).toBeGreaterThanOrEqual(a.rows[k - 1].successWithinBudget);
    }
    const [hidden, logits] = r.geometry.layers;
    expect(logits.layer).toBe('logits');
    for (const l of [hidden, logits]) {
      expect(l.meanDistance).toBeGreaterThan(0);
      expect(l.minDistance).toBeLessThanOrEqual(l.meanDistance);
      expect(l.withinSpread).toBeGreaterThan(0);
      expect(l.separationRatio).toBeCloseTo(l.meanDistance / l.withinSpread, 6);
    }
    expect(r.geometry.linearBoundaryL2).toBeGreaterThan(0);
    expect(r.geometry.cwBoundaryL2).toBeGreaterThan(0);
    expect(r.detection.detectors).toContain('combined');
    expect(r.detection.rows.map((row) => row.attack)).toEqual(['fgsm-0.1', 'pgd-0.1', 'cw-l2']);
    for (const row of r.detection.rows)
      for (const v of Object.values(row.auroc)) if (v !== null) expect(inUnit(v)).toBe(true);
  }
  // CW is unbounded: on some model it breaks enough images for every detector's AUROC.
  const computed = result.runs.flatMap((r) =>
    r.detection.rows.filter((row) => row.attack === 'cw-l2' && row.auroc.combined !== null),
  );
  expect(computed.length).toBeGreaterThan(0);
  const reference = result.datasets.find((d) => d.id === 'ref-overlap-d10')!;
  expect(reference.geometry!.separation).toBe(1.2);
  expect(reference.geometry!.l2ToBoundary).toBe(0.6);
  // MLP-PNN's p(none) is measured, and only for it.
  const pnn = result.runs.filter((r) => r.rejection);
  expect(pnn.map((r) => r.variant)).toEqual(['mlp-pnn']);
  expect(inUnit(pnn[0].rejection!.cleanRejected)).toBe(true);
  for (const row of pnn[0].rejection!.rows) {
    expect(inUnit(row.rejected)).toBe(true);
    if (row.auroc !== null) expect(inUnit(row.auroc)).toBe(true);
  }
});

test('a second run loads every model from the cache and measures the same', async () => {
  const again = await runCausesStudy({
    settings: QUICK_CAUSES_SETTINGS,
    cacheDir: path.join(tmp, 'cache'),
    dataDir: DATA,
    datasets: datasets.filter((d) => d.id === 'ref-overlap-d10'),
  });
  expect(again.cachedModels).toBe(1);
  expect(again.trainedModels).toBe(0);
  const before = result.runs.find((r) => r.dataset === 'ref-overlap-d10')!;
  expect(again.runs[0].cleanAccuracy).toBe(before.cleanAccuracy);
  expect(again.runs[0].model.dir).toBe(before.model.dir);
}, 120_000);
