/**
 * `evaluate --merge`: parts of one draw run apart (`--offset`) pool into the report the whole draw
 * gives; parts that are not of one evaluation are refused.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { AttackRow, EvaluationResult, EvaluationScores } from '../../src/evaluation/evaluate';
import { EvaluationPart, MergeError, mergeEvaluations, withCounts } from '../../src/evaluation/merge';
import { auroc } from '../../src/evaluation/metrics';
import type { ReportContext } from '../../src/evaluation/report';
import { advsieve } from '../helpers/cli';

let tmp: string;
beforeAll(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-merge-'))));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const readJson = (dir: string, name: string) => JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));

test('--processes 2 splits the draw into two parts and merges them into the whole: FGSM (no randomness) gives the same counts and AUROC', async () => {
  const run = (out: string, ...args: string[]) =>
    advsieve('evaluate', '--count', '24', '--attacks', 'fgsm-0.1', '--out', path.join(tmp, out), ...args);
  const [whole, split] = await Promise.all([run('whole'), run('split', '--processes', '2', '--json')]);
  expect(whole.code).toBe(0);
  expect(split.code).toBe(0);
  expect(split.stderr).toMatch(/24 images in 2 processes \(images 0–11, 12–23 of the draw\)/);
  expect(split.stdout).toMatch(/merged 2 parts \(24 images\)/);
  // The same parts merged again by hand give the same report.
  const parts = ['part-0', 'part-12'].map((p) => path.join(tmp, 'split', p));
  const merged = await advsieve('evaluate', '--merge', parts.reverse().join(','), '--out', path.join(tmp, 'merged'));
  expect(merged.stderr).toBe('');
  expect(merged.code).toBe(0);
  const reference = readJson(path.join(tmp, 'whole'), 'evaluation.json');
  for (const dir of ['split', 'merged']) {
    const pooled = readJson(path.join(tmp, dir), 'evaluation.json');
    expect(pooled.images).toBe(24);
    expect(pooled.cleanAccuracy).toBeCloseTo(reference.cleanAccuracy, 12);
    const [w, m] = [reference.attacks[0], pooled.attacks[0]];
    for (const key of ['eligible', 'misclassified', 'evaded', 'successful']) expect(m[key]).toBe(w[key]);
    expect(m.successRate).toBeCloseTo(w.successRate, 12);
    expect(m.misclassified).toBeGreaterThan(0);
    for (const [k, d] of w.detectors.entries()) {
      expect(m.detectors[k].name).toBe(d.name);
      expect(m.detectors[k].auroc).toBeCloseTo(d.auroc, 6);
      expect(m.detectors[k].tprAtCalibratedThreshold).toBeCloseTo(d.tprAtCalibratedThreshold, 6);
    }
    expect(m.meanL2).toBeCloseTo(w.meanL2, 4);
    expect(pooled.falsePositives.rows).toEqual(reference.falsePositives.rows);
    const md = fs.readFileSync(path.join(tmp, dir, 'evaluation.md'), 'utf8');
    expect(md).toMatch(/Merged from 2 parts run apart/);
    expect(md).toMatch(/images 0–11 of the draw: `npx advsieve evaluate .*--offset 0 --count 12/);
    expect(md).toMatch(/images 12–23 of the draw/);
    expect(fs.existsSync(path.join(tmp, dir, 'roc-fgsm-0.1.png'))).toBe(true);
  }
  expect(fs.readFileSync(path.join(tmp, 'split', 'part-12', 'evaluate.log'), 'utf8')).toMatch(/fgsm-0.1/);

  // Overlapping parts, or a part merged with itself, are refused: the images would count twice.
  const twice = await advsieve(
    'evaluate',
    '--merge',
    `${path.join(tmp, 'split', 'part-0')},${path.join(tmp, 'whole')}`,
    '--out',
    path.join(tmp, 'bad'),
  );
  expect(twice.code).not.toBe(0);
  expect(twice.stderr).toMatch(/overlaps/);
  const nothing = await advsieve('evaluate', '--merge', path.join(tmp, 'whole'), '--out', path.join(tmp, 'bad'));
  expect(nothing.code).not.toBe(0);
  expect(nothing.stderr).toMatch(/at least two parts/);
}, 300_000);

/** FGSM on 8 images in 2 processes, into `out`. */
const eightInTwo = (out: string, ...args: string[]) =>
  advsieve('evaluate', '--count', '8', '--processes', '2', '--attacks', 'fgsm-0.1', '--out', out, ...args);

test('a bad setting fails --processes before any part starts', async () => {
  const { code, stderr } = await eightInTwo(
    path.join(tmp, 'failing'),
    '--calibration',
    path.join(tmp, 'no-such-calibration.json'),
  );
  expect(code).not.toBe(0);
  expect(stderr).toMatch(/no-such-calibration/);
  expect(fs.existsSync(path.join(tmp, 'failing', 'part-0'))).toBe(false);
}, 120_000);

/** A synthetic part: `clean` and `positives` scores of one detector, the row's counts. */
function part(
  dir: string,
  offset: number,
  clean: number[],
  positives: number[],
  counts: { eligible: number; evaded: number },
  calibration = '2026-12-04T00:00:00.000Z',
): EvaluationPart {
  const row = {
    name: 'pgd',
    method: 'pgd',
    adaptive: true,
    eligible: counts.eligible,
    misclassified: positives.length,
    evaded: counts.evaded,
    successful: counts.evaded,
    meanLinf: 0.1,
    meanL2: offset ? 2 : 1,
    detectors: [{ name: 'combined', auroc: 1, tprAtFpr5: 1, tprAtCalibratedThreshold: 1 }],
    defenses: [{ name: 'lowpass', accuracy: offset ? 0.5 : 1, cleanAccuracy: 1 }],
    spectrum: { targetCorrelation: 0, otherCorrelation: 0, targetIsBest: 0, images: positives.length },
    trajectory: [],
    promotionSuppression: { suppression: 0, promotion: 0, balanced: 1, meanDrop: 0, meanRise: 0 },
    seconds: 10,
  } as unknown as AttackRow;
  const result = {
    images: clean.length,
    seed: 1,
    cleanAccuracy: 1,
    cleanFalsePositiveRate: { combined: 0 },
    defensesClean: [{ name: 'lowpass', accuracy: 1, cleanAccuracy: 1 }],
    attacks: [row],
    seconds: 10,
  } as EvaluationResult;
  const context = {
    command: `npx advsieve evaluate --offset ${offset}`,
    date: '',
    model: { id: 'm', sha256: 'x' },
    backend: 'wasm',
    calibration: { createdAt: calibration },
    labels: [],
    imageShape: [],
  } as unknown as ReportContext;
  const scores: EvaluationScores = {
    names: ['combined'],
    clean: clean.map((s) => [s]),
    rows: { pgd: { positives: positives.map((s) => [s]) } },
  };
  return { dir, result, context, scores };
}

test('pooled AUROC is read on all scores together, not averaged; counts add; means weigh by images', () => {
  // Each part alone separates perfectly (AUROC 1); together the second part's positives sit below
  // the first part's clean images.
  const a = part('a', 0, [0, 1, 2, 3], [4, 5], { eligible: 4, evaded: 1 });
  const b = part('b', 4, [10, 11, 12, 13], [14, 2.5], { eligible: 3, evaded: 2 });
  const { result } = mergeEvaluations([a, b], { combined: 3.5 });
  const row = result.attacks[0];
  expect(row.eligible).toBe(7);
  expect(row.evaded).toBe(3);
  expect(row.evasionRate).toBeCloseTo(3 / 7, 12);
  expect(row.successRate).toBeCloseTo(3 / 7, 12); // adaptive: success is evasion
  const expected = auroc([4, 5, 14, 2.5], [0, 1, 2, 3, 10, 11, 12, 13]);
  expect(row.detectors[0].auroc).toBeCloseTo(expected, 12);
  expect(row.detectors[0].auroc).toBeLessThan(1);
  expect(row.detectors[0].tprAtCalibratedThreshold).toBeCloseTo(3 / 4, 12); // 4, 5, 14 > 3.5
  expect(row.meanL2).toBeCloseTo(1.5, 12); // two misclassified each
  expect(row.defenses[0].accuracy).toBeCloseTo(0.75, 12); // 4 images each
  expect(result.images).toBe(8);
});

test('parts of different calibrations, or with a count that disagrees with their scores, are refused', () => {
  const a = part('a', 0, [0, 1], [4], { eligible: 2, evaded: 0 });
  const other = part('b', 2, [0, 1], [4], { eligible: 2, evaded: 0 }, '2026-12-05T00:00:00.000Z');
  expect(() => mergeEvaluations([a, other], {})).toThrow(MergeError);
  expect(() => mergeEvaluations([a, other], {})).toThrow(/calibration differs/);
  const short = part('b', 2, [0, 1], [4], { eligible: 2, evaded: 0 });
  short.scores!.rows.pgd.positives.pop();
  expect(() => mergeEvaluations([a, short], {})).toThrow(/b: pgd: 0 positive scores for 1 misclassified/);
  const overlapping = part('b', 1, [0, 1], [4], { eligible: 2, evaded: 0 });
  expect(() => mergeEvaluations([a, overlapping], {})).toThrow(/overlaps/);
});

test('parts written before scores and counts were kept: counts read back from the rates, AUROC n/a', () => {
  const old = (p: EvaluationPart, right: number, misclassified: number, evaded: number): EvaluationPart => {
    // The row as written then: no image counts.
    const row: Record<string, unknown> = { ...p.result.attacks[0] };
    delete row.eligible;
    delete row.misclassified;
    delete row.evaded;
    const result = {
      ...p.result,
      cleanAccuracy: right / p.result.images,
      attacks: [
        {
          ...row,
          detectors: [{ name: 'combined', auroc: 0.9, tprAtFpr5: 0.5, tprAtCalibratedThreshold: 0.5 }],
          misclassificationRate: misclassified / right,
          evasionRate: evaded / right,
          targetClass: null,
        },
      ],
    } as unknown as EvaluationResult;
    return { dir: p.dir, context: p.context, result: withCounts(p.dir, result) };
  };
  const a = old(part('a', 0, [0, 1, 2, 3, 4, 5, 6], [], { eligible: 0, evaded: 0 }), 6, 2, 1);
  const b = old(part('b', 7, [0, 1, 2], [], { eligible: 0, evaded: 0 }), 3, 1, 1);
  expect(a.result.attacks[0]).toMatchObject({ eligible: 6, misclassified: 2, evaded: 1 });
  const { result, artifacts } = mergeEvaluations([a, b], { combined: 0 });
  const row = result.attacks[0];
  expect(row).toMatchObject({ eligible: 9, misclassified: 3, evaded: 2 });
  expect(row.evasionRate).toBeCloseTo(2 / 9, 12);
  expect(row.detectors[0].auroc).toBeNaN();
  expect(row.detectors[0].tprAtCalibratedThreshold).toBeCloseTo(0.5, 12);
  expect(artifacts.scores).toBeUndefined();
  expect(artifacts.roc).toEqual({});
  // A row towards one class cannot be counted back: its eligible images are not the right ones.
  const towards = { ...a.result, attacks: [{ ...a.result.attacks[0], eligible: undefined, targetClass: 3 }] };
  expect(() => withCounts('c', towards as unknown as EvaluationResult)).toThrow(/towards one class/);
});

test('a part that fails fails the run, naming its images and its log', async () => {
  const out = path.join(tmp, 'part-fails');
  // The first part cannot write its report: its evaluation.json is a directory.
  fs.mkdirSync(path.join(out, 'part-0', 'evaluation.json'), { recursive: true });
  const { code, stderr } = await eightInTwo(out);
  expect(code).not.toBe(0);
  expect(stderr).toMatch(/the part of images 0–3 failed \(exit 1\): .*EISDIR.*part-0[/\\]evaluate\.log/);
  expect(fs.existsSync(path.join(out, 'evaluation.md'))).toBe(false);
}, 120_000);
