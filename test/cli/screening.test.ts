/** `advsieve screen`, `calibrate --images` and `evaluate` as users run them: child processes, JSON on stdout. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { loadFashionMnist, FASHION_LABELS } from '../../src/data/fashionMnist';
import { FIXTURE_DIR, fixtureLabels } from '../helpers/fixtures';
import { advsieve } from '../helpers/cli';

let tmp: string;
beforeAll(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-cli-'))));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('screen --json: prediction, every detector with its threshold, the verdict; --defend adds the low-pass prediction', async () => {
  const fx = fixtureLabels().slice(0, 5);
  const { stdout, code } = await advsieve('screen', ...fx.map((f) => f.file), '--json', '--defend');
  expect(code).toBe(0);
  const rows = JSON.parse(stdout);
  expect(rows).toHaveLength(5);
  for (const [i, r] of rows.entries()) {
    expect(r.file).toBe(fx[i].file);
    expect(Number.isInteger(r.prediction.classIndex)).toBe(true);
    expect(typeof r.detection.adversarial).toBe('boolean');
    expect(r.detection.score).toEqual(expect.any(Number));
    expect(r.detection.threshold).toEqual(expect.any(Number));
    expect(r.detection.detectors.map((d: { name: string }) => d.name)).toEqual([
      'highFrequency',
      'activationDistance',
      'mahalanobis',
      'density',
      'lowPassDisagreement',
    ]);
    for (const d of r.detection.detectors) expect(d.flagged).toBe(d.score > d.threshold);
    expect(Number.isInteger(r.defense.prediction.classIndex)).toBe(true);
  }
  // Clean official test images: mostly not flagged.
  expect(
    rows.filter((r: { detection: { adversarial: boolean } }) => r.detection.adversarial).length,
  ).toBeLessThanOrEqual(1);
});

test('screen: a stricter false-positive rate raises thresholds; a bad file gets a coded error and exit 1', async () => {
  const good = path.join(FIXTURE_DIR, 'test-0002-trouser.png');
  const loose = JSON.parse((await advsieve('screen', good, '--json', '--target-fpr', '0.2')).stdout);
  const strict = JSON.parse((await advsieve('screen', good, '--json', '--target-fpr', '0.01')).stdout);
  expect(strict[0].detection.threshold).toBeGreaterThan(loose[0].detection.threshold);
  expect(strict[0].defense).toBeUndefined();
  const { stdout, code } = await advsieve('screen', good, path.join(FIXTURE_DIR, 'labels.json'));
  expect(code).toBe(1);
  expect(stdout).toMatch(/test-0002-trouser.png: Trouser .* (clean|ADVERSARIAL)/);
  expect(stdout).toMatch(/labels.json: error UNSUPPORTED_FORMAT/);
});

test('calibrate --images: a folder with a sub-folder per class, any size and colour, calibrates a model', async () => {
  const train = loadFashionMnist('train', undefined, 150);
  const root = path.join(tmp, 'images');
  for (let i = 0; i < train.count; i++) {
    // Folders named by label ('/' written '_': "T-shirt_top"), one by class index.
    const label = train.labels[i];
    const dir = path.join(root, label === 9 ? '9' : FASHION_LABELS[label].replace('/', '_'));
    fs.mkdirSync(dir, { recursive: true });
    const grey = Buffer.from(train.pixels.subarray(i * 784, (i + 1) * 784).map((v) => Math.round(v * 255)));
    // Some as 56×56 RGB JPEG: calibration decodes what users have, as the service does.
    const img = sharp(grey, { raw: { width: 28, height: 28, channels: 1 } });
    if (i % 3 === 0)
      await img
        .resize(56, 56)
        .toColourspace('srgb')
        .jpeg()
        .toFile(path.join(dir, `${i}.jpg`));
    else await img.png().toFile(path.join(dir, `${i}.png`));
  }
  const out = path.join(tmp, 'calibration.json');
  const { stdout, stderr, code } = await advsieve(
    'calibrate',
    '--images',
    root,
    '--fit',
    '90',
    '--holdout',
    '40',
    '--attacked',
    '30',
    '--out',
    out,
  );
  expect(stderr).not.toMatch(/advsieve:/);
  expect(code).toBe(0);
  expect(stdout).toMatch(/wrote .*calibration.json/);
  const cal = JSON.parse(fs.readFileSync(out, 'utf8'));
  expect(cal.data.source).toBe(`folder ${root}`);
  expect([cal.data.fit, cal.data.holdout]).toEqual([90, 40]);
  const screened = await advsieve('screen', fixtureLabels()[0].file, '--calibration', out, '--json');
  expect(screened.code).toBe(0);
  expect(JSON.parse(screened.stdout)[0].detection.detectors).toHaveLength(5);
});

/** Fashion-MNIST training images written as PNGs: `dirOf(label, i)` names each one's folder under `root`. */
async function writeImages(
  root: string,
  train: ReturnType<typeof loadFashionMnist>,
  dirOf: (label: number, i: number) => string | undefined,
): Promise<void> {
  for (let i = 0; i < train.count; i++) {
    const dir = dirOf(train.labels[i], i);
    if (dir === undefined) continue;
    fs.mkdirSync(path.join(root, dir), { recursive: true });
    const grey = Buffer.from(train.pixels.subarray(i * 784, (i + 1) * 784).map((v) => Math.round(v * 255)));
    await sharp(grey, { raw: { width: 28, height: 28, channels: 1 } })
      .png()
      .toFile(path.join(root, dir, `${i}.png`));
  }
}

test('calibrate --images with classes left out: finishes, reports each class (fit, hold-out) and the pooled ones, as text and --json', async () => {
  const train = loadFashionMnist('train', undefined, 200);
  const root = path.join(tmp, 'partial');
  await writeImages(root, train, (label) => (label >= 8 ? undefined : FASHION_LABELS[label].replace('/', '_')));
  const out = path.join(tmp, 'partial.json');
  const args = ['calibrate', '--images', root, '--holdout', '40', '--attacked', '30', '--out', out];
  const { stdout, stderr, code } = await advsieve(...args, '--fit', '90');
  expect(code).toBe(0);
  // Each long stage is announced on stderr, with a progress line off a terminal.
  for (const stage of [
    /reading and decoding the images/,
    /attacking 30 training images/,
    /choosing the low-pass radius/,
    /forward passes/,
    /fitting the 5 detectors/,
  ])
    expect(stderr).toMatch(new RegExp(`calibrate: ${stage.source} .*\\[\\d+ s\\]\\n`));
  expect(stderr).toMatch(/\[=+\] (\d+)\/\1 /);
  expect(stderr).toMatch(/class\(es\) with fewer than 10 fit images use the pooled statistics .*: .*Bag, Ankle boot\n/);
  expect(stdout).toMatch(
    /images per class:\n {2}class +fit +hold-out\n(.*\n)* {2}Bag +0 +0 +pooled\n {2}Ankle boot +0 +0 +pooled\n/,
  );
  expect(stdout).toMatch(/^wrote .*partial\.json \(\d+\.\d\d MiB\)\n/);
  expect(stdout).toMatch(
    /s \(read \d+, attacks \d+, attackCheck \d+, lowPass \d+, features \d+, classSpectra \d+, fit \d+, scores \d+\)/,
  );
  const cal = JSON.parse(fs.readFileSync(out, 'utf8'));
  // Bag and Ankle boot, and any class this small sample gave fewer than 10 fit images.
  expect(cal.data.pooledClasses).toEqual(
    Object.entries(cal.data.classImages as Record<string, number>).flatMap(([label, n]) => (n < 10 ? [label] : [])),
  );
  expect(cal.data.pooledClasses).toEqual(expect.arrayContaining(['Bag', 'Ankle boot']));
  expect(cal.data.classImages.Bag).toBe(0);
  expect(cal.data.holdoutClassImages['Ankle boot']).toBe(0);
  // The classes left out have no mean spectrum; the others have one over their fit images.
  expect(cal.classSpectra.images).toEqual(Object.values(cal.data.classImages));
  expect(cal.classSpectra.radial[8]).toEqual([]);
  expect(cal.classSpectra.radial[0]).toHaveLength(20);
  const fitTotal = Object.values(cal.data.classImages as Record<string, number>).reduce((a, b) => a + b, 0);
  const holdoutTotal = Object.values(cal.data.holdoutClassImages as Record<string, number>).reduce((a, b) => a + b, 0);
  expect([fitTotal, holdoutTotal]).toEqual([cal.data.fit, cal.data.holdout]);
  for (const scores of Object.values(cal.holdoutScores) as number[][]) expect(scores.every(Number.isFinite)).toBe(true);
  // --json: the same report as one object.
  const json = await advsieve(...args, '--fit', '90', '--json');
  expect(json.code).toBe(0);
  const report = JSON.parse(json.stdout);
  expect(report.classes).toEqual({
    fit: cal.data.classImages,
    holdout: cal.data.holdoutClassImages,
    pooled: cal.data.pooledClasses,
  });
  expect(report.images).toMatchObject({ fit: cal.data.fit, holdout: cal.data.holdout });
  expect(report.files).toEqual([{ file: path.relative(process.cwd(), out), bytes: fs.statSync(out).size }]);
  expect(Object.keys(report.detectors)).toEqual([...Object.keys(cal.detectors), 'combined']);
  expect(report.seconds.total).toBeGreaterThan(report.seconds.attacks);
  // Too few images: the message gives the real minimum and names the flags.
  const few = await advsieve(...args, '--fit', '10');
  expect(few.code).toBe(1);
  expect(few.stderr).toMatch(/--fit must be at least 20, got 10/);
});

test('calibrate --labels predicted: any folder, sub-folders searched, classes from the model', async () => {
  const train = loadFashionMnist('train', undefined, 150);
  const root = path.join(tmp, 'unsorted');
  await writeImages(root, train, (_, i) => (i % 4 === 1 ? 'a/b' : '.'));
  fs.writeFileSync(path.join(root, 'notes.txt'), 'not an image\n');
  const out = path.join(tmp, 'predicted.json');
  const args = ['calibrate', '--images', root, '--labels', 'predicted', '--fit', '90', '--holdout', '40'];
  const { stderr, code } = await advsieve(...args, '--attacked', '30', '--out', out);
  expect(code).toBe(0);
  expect(stderr).toMatch(/labelling 150 images of .* by the model's predictions/);
  expect(stderr).toMatch(/skipped notes.txt: UNSUPPORTED_FORMAT/);
  const cal = JSON.parse(fs.readFileSync(out, 'utf8'));
  expect(cal.data.source).toMatch(/labelled by the model's predictions/);
  expect(Object.keys(cal.data.classImages)).toEqual([...FASHION_LABELS]);
  expect(Object.values(cal.data.classImages as Record<string, number>).reduce((a, b) => a + b)).toBe(90);
  const tooFew = await advsieve('calibrate', '--images', path.join(root, 'a'), '--labels', 'predicted', '--out', out);
  expect(tooFew.code).toBe(1);
  expect(tooFew.stderr).toMatch(/calibration needs at least 67 images, got 38: .*--holdout.*--fit/);
});

test('evaluate --quick --json writes the report and prints the result with combined and lowpass rows', async () => {
  const dir = path.join(tmp, 'reports');
  const { stdout, code } = await advsieve(
    'evaluate',
    '--quick',
    '--images',
    '48',
    '--attacks',
    'fgsm-0.1,pgd-0.1',
    '--out',
    dir,
    '--json',
  );
  expect(code).toBe(0);
  const lines = stdout.trim().split('\n');
  const result = JSON.parse(lines[lines.length - 1]);
  expect(result.cleanAccuracy).toBeGreaterThan(0.8);
  expect(result.attacks.map((a: { name: string }) => a.name)).toEqual(['fgsm-0.1', 'pgd-0.1']);
  for (const a of result.attacks) {
    expect(a.successRate).toBeGreaterThan(0.2);
    const combined = a.detectors.find((d: { name: string }) => d.name === 'combined');
    expect(combined.auroc).toBeGreaterThan(0.5);
    expect(a.detectors.map((d: { name: string }) => d.name)).toContain('featureSqueezing');
    const lowpass = a.defenses.find((d: { name: string }) => d.name === 'lowpass');
    expect(lowpass.cleanAccuracy).toBeGreaterThan(0.5);
  }
  for (const f of ['evaluation.md', 'evaluation.json', 'roc-pgd-0.1.png', 'spectra.png', 'trajectory.png'])
    expect(fs.existsSync(path.join(dir, f))).toBe(true);
  expect(fs.readFileSync(path.join(dir, 'evaluation.md'), 'utf8')).toMatch(/## Goals/);
});

test('attack --adaptive detectors writes images that screen reads; an unknown adaptive target is refused', async () => {
  const fx = fixtureLabels().slice(2, 4);
  const out = path.join(tmp, 'adaptive');
  const attacked = await advsieve(
    'attack',
    ...fx.map((f) => f.file),
    '--method',
    'pgd',
    '--epsilon',
    '0.1',
    '--steps',
    '5',
    '--adaptive',
    'detectors',
    '--out',
    out,
    '--json',
  );
  expect(attacked.code).toBe(0);
  const rows = JSON.parse(attacked.stdout);
  expect(rows).toHaveLength(2);
  const screened = await advsieve('screen', ...rows.map((r: { out: string }) => r.out), '--json');
  expect(screened.code).toBe(0);
  expect(
    JSON.parse(screened.stdout).map((r: { prediction: { classIndex: number } }) => r.prediction.classIndex),
  ).toEqual(rows.map((r: { adversarial: { classIndex: number } }) => r.adversarial.classIndex));
  const bad = await advsieve(
    'attack',
    fx[0].file,
    '--method',
    'pgd',
    '--epsilon',
    '0.1',
    '--adaptive',
    'everything',
    '--out',
    out,
  );
  expect(bad.code).not.toBe(0);
  expect(bad.stderr).toMatch(/Allowed choices are lowpass, detectors/);
});

test('screen --fail-on-adversarial: exit 2 when an image is judged adversarial, 0 when none is; the human output explains the verdict', async () => {
  const trouser = path.join(FIXTURE_DIR, 'test-0002-trouser.png');
  const out = path.join(tmp, 'gate');
  const attacked = await advsieve('attack', trouser, '--method', 'pgd', '--epsilon', '0.1', '--out', out);
  expect(attacked.code).toBe(0);
  const adversarial = path.join(out, fs.readdirSync(out)[0]);
  const gate = await advsieve('screen', adversarial, trouser, '--fail-on-adversarial');
  expect(gate.stdout).toMatch(/ADVERSARIAL/);
  expect(gate.code).toBe(2);
  // The header says what the columns are and that the combined score decides.
  expect(gate.stdout.split('\n')[0]).toMatch(/^verdict: ADVERSARIAL when the combined score passes its threshold/);
  expect(gate.stdout).toMatch(/detector\s+score \/ threshold/);
  // Without the flag an adversarial verdict is an answer, not a failure; clean images pass the gate.
  expect((await advsieve('screen', adversarial)).code).toBe(0);
  expect((await advsieve('screen', trouser, '--fail-on-adversarial')).code).toBe(0);
});
