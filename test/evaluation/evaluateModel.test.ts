/**
 * `evaluate` on a model that is not the bundled one: an RGB model of another size, its images from
 * a folder of class folders (calibrate's `--images`), the photo suite with a row towards one class,
 * a report in reports/<id>/ (here: --out) with its plots.
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';
import { loadFashionMnist } from '../../src/data/fashionMnist';
import { initBackend } from '../../src/engine/backends';
import { encodePng16 } from '../../src/images/encode';
import { makeRgbModel, RGB_MODEL_ID, toRgb32 } from '../helpers/rgbModel';

const run = promisify(execFile);
const BIN = path.join(__dirname, '..', '..', 'bin', 'advsieve.js');
let dir: string;

beforeAll(async () => {
  await initBackend('wasm');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-evaluate-'));
  await makeRgbModel(path.join(dir, RGB_MODEL_ID));
  // Four test images of each of the first three classes, as 32×32 RGB PNG files in class folders.
  const test = loadFashionMnist('test', undefined, 200);
  const labels = ['T-shirt_top', 'Trouser', 'Pullover'];
  const rgb = toRgb32(test.pixels, test.count);
  const size = 32 * 32 * 3;
  for (let k = 0; k < 3; k++) {
    const folder = path.join(dir, 'images', labels[k]);
    fs.mkdirSync(folder, { recursive: true });
    const of = [...test.labels.keys()].filter((i) => test.labels[i] === k).slice(0, 4);
    for (const i of of)
      fs.writeFileSync(
        path.join(folder, `${i}.png`),
        await encodePng16(rgb.subarray(i * size, (i + 1) * size), [32, 32, 3]),
      );
  }
}, 240_000);

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test('an RGB model on a folder: the photo suite, a row towards one class leaves that class out, the report and plots', async () => {
  const out = path.join(dir, 'report');
  const { stdout, stderr } = await run(
    'node',
    [
      BIN,
      'evaluate',
      '--model',
      path.join(dir, RGB_MODEL_ID),
      '--images',
      path.join(dir, 'images'),
      '--steps',
      '2',
      '--attacks',
      'fgsm-8/255,pgd-8/255,pgd-8/255-to-Trouser',
      '--out',
      out,
      '--json',
    ],
    { env: { ...process.env, LOG_LEVEL: 'warn', ADVSIEVE_BACKEND: 'wasm' } },
  );
  expect(stderr).toMatch(/12 images of folder .*images, 3 attacks/);
  const result = JSON.parse(stdout.trim().split('\n').pop()!) as {
    images: number;
    cleanAccuracy: number;
    attacks: Array<{
      name: string;
      targeted: boolean;
      targetClass: number | null;
      successful: number;
      detectors: unknown[];
    }>;
  };
  expect(result.images).toBe(12);
  expect(result.cleanAccuracy).toBeGreaterThan(0.5);
  expect(result.attacks.map((a) => a.name)).toEqual(['fgsm-8/255', 'pgd-8/255', 'pgd-8/255-to-Trouser']);
  const towards = result.attacks[2];
  expect(towards).toMatchObject({ targeted: true, targetClass: 1 });
  // Only the 8 images that are not trousers could be pushed towards Trouser.
  expect(towards.successful).toBeLessThanOrEqual(8);
  const files = fs.readdirSync(out);
  expect(files).toEqual(expect.arrayContaining(['evaluation.md', 'evaluation.json', 'spectra.png']));
  // The report records what the calibration was, not its fitted states (megabytes).
  const stored = JSON.parse(fs.readFileSync(path.join(out, 'evaluation.json'), 'utf8'));
  expect(Object.keys(stored.context.calibration).sort()).toEqual(['createdAt', 'data', 'defaultTargetFpr', 'lowPass']);
  expect(stored.context.model.id).toBe(RGB_MODEL_ID);
  const md = fs.readFileSync(path.join(out, 'evaluation.md'), 'utf8');
  expect(md).toMatch(/12 images of folder .*images/);
  expect(md).toMatch(/pgd-8\/255-to-Trouser/);
});
