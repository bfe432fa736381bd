/** A folder of images as a labelled data set, on a temporary tree of images made with sharp. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { FASHION_LABELS } from '../../src/data/fashionMnist';
import { loadImageFolder, loadUnlabelledImages } from '../../src/data/imageFolder';

const GREY: [number, number, number] = [28, 28, 1];

/** A w×h image of constant value `v` (0..255), with `channels` channels, in `format`. */
async function image(
  w: number,
  h: number,
  v: number,
  channels: 1 | 3,
  format: 'png' | 'jpeg' | 'webp',
): Promise<Buffer> {
  return sharp(Buffer.alloc(w * h * channels, v), { raw: { width: w, height: h, channels } })
    .toFormat(format)
    .toBuffer();
}

let root: string;
let tree: string;

function write(rel: string, bytes: Buffer | string): void {
  const file = path.join(tree, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, bytes);
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-folder-'));
  tree = path.join(root, 'set');
  // Sneaker: five grey PNGs of different sizes (values 10, 20, … 50), a truncated PNG, a note.
  for (let i = 1; i <= 5; i++) write(`Sneaker/s${i}.png`, await image(20 + 8 * i, 28 + 3 * i, 10 * i, 1, 'png'));
  const whole = await image(28, 28, 200, 1, 'png');
  write('Sneaker/broken.png', whole.subarray(0, whole.length - 20));
  write('Sneaker/notes.txt', 'not an image\n');
  write('Sneaker/.DS_Store', 'hidden: ignored');
  // Bag: RGB JPEGs and a WebP, one large, and a folder that is not searched.
  write('Bag/b1.jpg', await image(28, 28, 128, 3, 'jpeg'));
  write('Bag/b2.jpeg', await image(300, 200, 255, 3, 'jpeg'));
  write('Bag/b3.webp', await image(14, 56, 0, 3, 'webp'));
  write('Bag/nested/b4.png', await image(28, 28, 90, 1, 'png'));
  // Trouser: one grey JPEG. A loose file at the top is not a class.
  write('Trouser/t1.jpg', await image(28, 28, 60, 1, 'jpeg'));
  write('README.txt', 'top-level files are ignored\n');
});

afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** The decodable images of the class folders, in order. */
const CLASS_FOLDER_FILES = [
  ...['Bag/b1.jpg', 'Bag/b2.jpeg', 'Bag/b3.webp'],
  ...[1, 2, 3, 4, 5].map((i) => `Sneaker/s${i}.png`),
  'Trouser/t1.jpg',
];

test('classes are the sorted folder names; bad files are skipped and listed', async () => {
  const set = await loadImageFolder(tree, GREY);
  expect(set.classNames).toEqual(['Bag', 'Sneaker', 'Trouser']);
  expect(set.count).toBe(9);
  expect(set.files).toEqual(CLASS_FOLDER_FILES);
  expect(Array.from(set.labels)).toEqual([0, 0, 0, 1, 1, 1, 1, 1, 2]);
  expect(set.pixels).toHaveLength(9 * 784);
  expect(set.skipped.map(({ file, code }) => ({ file, code }))).toEqual([
    { file: 'Bag/nested', code: 'NOT_A_FILE' },
    { file: 'Sneaker/broken.png', code: 'CORRUPT_IMAGE' },
    { file: 'Sneaker/notes.txt', code: 'UNSUPPORTED_FORMAT' },
  ]);
  // s1.png is 28×31 grey 10: scaled into 28×28 with black side bars, its centre stays 10/255.
  const s1 = set.pixels.subarray(3 * 784, 4 * 784);
  expect(s1[14 * 28 + 14]).toBeCloseTo(10 / 255, 6);
  expect(Math.min(...set.pixels)).toBeGreaterThanOrEqual(0);
  expect(Math.max(...set.pixels)).toBeLessThanOrEqual(1);
});

test('unlabelled (calibrate --labels predicted): every image under the folder, sub-folders searched, hidden names ignored', async () => {
  const set = await loadUnlabelledImages(tree, GREY);
  // The nested folder's image too, which class folders do not search.
  expect(set.files).toEqual([...CLASS_FOLDER_FILES.slice(0, 3), 'Bag/nested/b4.png', ...CLASS_FOLDER_FILES.slice(3)]);
  expect(set.count).toBe(10);
  expect(set.pixels).toHaveLength(10 * 784);
  expect(set.pixels[3 * 784 + 14 * 28 + 14]).toBeCloseTo(90 / 255, 6); // b4.png, grey 90
  expect(set.skipped.map(({ file, code }) => ({ file, code }))).toEqual([
    { file: 'README.txt', code: 'UNSUPPORTED_FORMAT' },
    { file: 'Sneaker/broken.png', code: 'CORRUPT_IMAGE' },
    { file: 'Sneaker/notes.txt', code: 'UNSUPPORTED_FORMAT' },
  ]);
  await expect(loadUnlabelledImages(path.join(root, 'missing'), GREY)).rejects.toThrow(/is not a directory/);
});

test("with the model's labels, a folder's class is its name's index, and RGB models get 3 channels", async () => {
  const set = await loadImageFolder(tree, [28, 28, 3], { labels: FASHION_LABELS });
  expect(set.classNames).toEqual([...FASHION_LABELS]);
  expect(set.count).toBe(9);
  expect(set.pixels).toHaveLength(9 * 28 * 28 * 3);
  // Ordered by class index: Trouser (1), Sneaker (7), Bag (8).
  expect(Array.from(set.labels)).toEqual([1, 7, 7, 7, 7, 7, 8, 8, 8]);
  expect(set.files[0]).toBe('Trouser/t1.jpg');
  // b2.jpeg is white, 300×200 shrunk into 28×28: the centre pixel is white in all three channels.
  const b2 = set.pixels.subarray(7 * 2352, 8 * 2352);
  expect(Array.from(b2.subarray((14 * 28 + 14) * 3, (14 * 28 + 14) * 3 + 3))).toEqual([1, 1, 1]);
});

test('limitPerClass takes a seeded random subset of the decodable images', async () => {
  const a = await loadImageFolder(tree, GREY, { limitPerClass: 2, seed: 1 });
  expect(a.count).toBe(5); // 2 bags, 2 sneakers, the one trouser
  expect(Array.from(a.labels)).toEqual([0, 0, 1, 1, 2]);
  expect(a.files.every((f) => !f.endsWith('.txt') && !f.includes('broken'))).toBe(true);
  const again = await loadImageFolder(tree, GREY, { limitPerClass: 2, seed: 1 });
  expect(again.files).toEqual(a.files);
  expect(again.skipped).toEqual(a.skipped);
  const all = await loadImageFolder(tree, GREY, { limitPerClass: 10, seed: 1 });
  expect(all.files).toEqual((await loadImageFolder(tree, GREY)).files);
  expect(all.skipped).toHaveLength(3);
  const subsets = new Set<string>();
  for (let seed = 0; seed < 6; seed++) {
    const s = await loadImageFolder(tree, GREY, { limitPerClass: 2, seed });
    subsets.add(s.files.filter((f) => f.startsWith('Sneaker/')).join(','));
  }
  expect(subsets.size).toBeGreaterThan(1);
});

describe('errors say what layout is expected', () => {
  let other: string;
  beforeEach(() => {
    other = fs.mkdtempSync(path.join(root, 'case-'));
  });

  test('a folder name that is not a label is named, with the valid labels', async () => {
    await expect(loadImageFolder(tree, GREY, { labels: ['Bag', 'Sneaker'] })).rejects.toThrow(
      /folder\(s\) 'Trouser' are not class labels; each sub-folder must be named after one of: Bag, Sneaker/,
    );
  });

  test('an empty folder, one without sub-folders, and a missing one', async () => {
    await expect(loadImageFolder(other, GREY)).rejects.toThrow(/is empty; expected one sub-folder per class/);
    fs.writeFileSync(path.join(other, 'a.png'), await image(28, 28, 1, 1, 'png'));
    await expect(loadImageFolder(other, GREY)).rejects.toThrow(
      /has no sub-folders \(only 1 file\(s\)\); expected one sub-folder per class/,
    );
    await expect(loadImageFolder(path.join(other, 'absent'), GREY)).rejects.toThrow(
      /is not a directory; expected one sub-folder/,
    );
  });

  test('class folders without one decodable image', async () => {
    fs.mkdirSync(path.join(other, 'Bag'));
    fs.writeFileSync(path.join(other, 'Bag', 'x.txt'), 'text');
    await expect(loadImageFolder(other, GREY)).rejects.toThrow(
      /no decodable images \(1 file\(s\) skipped: Bag\/x.txt: UNSUPPORTED_FORMAT\)/,
    );
  });

  test('bad options are named', async () => {
    await expect(loadImageFolder(tree, GREY, { limitPerClass: 0 })).rejects.toThrow(
      /option 'limitPerClass' must be an integer ≥ 1; got 0/,
    );
    await expect(loadImageFolder(tree, GREY, { labels: ['Bag', 'Bag'] })).rejects.toThrow(
      /option 'labels' must be a non-empty list of distinct/,
    );
    await expect(loadImageFolder(tree, [28, 28, 2])).rejects.toThrow(/inputShape must be \[height, width, 1 or 3\]/);
  });
});
