/**
 * A folder of images as a labelled data set, so that users can calibrate the detectors on their own
 * model and data (the layout of torchvision's ImageFolder and Keras's image_dataset_from_directory):
 *
 *   dir/<class name>/<any file name>   e.g. dir/Sneaker/0001.png, dir/Bag/photo.jpg
 *
 * Every image goes through decodeImage, the service's own policy (any format, size and colour to
 * the model's input), so calibration sees what requests will. A file that does not decode — corrupt,
 * not an image, a .txt — is skipped and listed, not fatal; names starting with '.' are ignored.
 */
import * as fs from 'fs';
import * as path from 'path';
import { decodeImage, ImageDecodeError } from '../images/decode';
import { mulberry32, permutation } from '../train/random';

export interface ImageFolderOptions {
  /**
   * Class names by index, e.g. the model's labels: a folder's class is its name's position here,
   * and every folder must be one of them. Default: the folder names, sorted.
   */
  readonly labels?: readonly string[];
  /** At most this many images per class: a seeded random subset of the decodable ones. */
  readonly limitPerClass?: number;
  /** Seed of that subset (default 0). */
  readonly seed?: number;
  /** Files tried so far of those that may be (with a limit, a class stops being tried at it). */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface SkippedFile {
  /** Path relative to the folder, '/'-separated. */
  readonly file: string;
  /** ImageDecodeError's code, 'NOT_A_FILE' for a folder inside a class, or the read error's errno code. */
  readonly code: string;
  readonly message: string;
}

export interface ImageFolder {
  /** count × H × W × C values in [0, 1], row-major, ordered by class index then file name. */
  readonly pixels: Float32Array;
  /** Class index of each image. */
  readonly labels: Int32Array;
  readonly count: number;
  /** Class names by index: options.labels when given, otherwise the sorted folder names. */
  readonly classNames: string[];
  /** Path of each image relative to the folder, '/'-separated. */
  readonly files: string[];
  /** Files that were not taken, sorted by path. */
  readonly skipped: SkippedFile[];
}

// Files read and decoded at once: sharp decodes on libuv's thread pool (4 threads by default); a
// few more in flight hide the file reads, and the bound keeps large folders from being read whole.
const CONCURRENCY = 8;

const LAYOUT = 'one sub-folder per class holding its images, e.g. <dir>/Sneaker/0001.png';

type Candidate = { readonly classIndex: number; readonly file: string };
type Outcome = { readonly pixels: Float32Array } | { readonly skipped: SkippedFile };

function checkOptions(inputShape: readonly number[], options: ImageFolderOptions): void {
  const [h, w, c] = inputShape;
  if (
    inputShape.length !== 3 ||
    !(h >= 1 && w >= 1) ||
    !Number.isInteger(h) ||
    !Number.isInteger(w) ||
    (c !== 1 && c !== 3)
  ) {
    throw new RangeError(
      `inputShape must be [height, width, 1 or 3] with positive integer sizes; got [${inputShape.join(', ')}]`,
    );
  }
  const { labels, limitPerClass, seed } = options;
  if (labels !== undefined && (labels.length === 0 || new Set(labels).size !== labels.length)) {
    throw new RangeError(
      `option 'labels' must be a non-empty list of distinct class names; got [${labels.join(', ')}]`,
    );
  }
  if (limitPerClass !== undefined && !(Number.isInteger(limitPerClass) && limitPerClass >= 1)) {
    throw new RangeError(`option 'limitPerClass' must be an integer ≥ 1; got ${limitPerClass}`);
  }
  if (seed !== undefined && !Number.isInteger(seed))
    throw new RangeError(`option 'seed' must be an integer; got ${seed}`);
}

const visible = (name: string) => !name.startsWith('.');
const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The class folders of dir, sorted; throws when there are none. */
async function classFolders(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = (await fs.promises.readdir(dir)).filter(visible);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR')
      throw new Error(`image folder ${dir} is not a directory; expected ${LAYOUT}`);
    throw err;
  }
  const isDir = await Promise.all(names.map(async (n) => (await fs.promises.stat(path.join(dir, n))).isDirectory()));
  const folders = names.filter((_, i) => isDir[i]).sort(byCodeUnit);
  if (folders.length === 0) {
    const what = names.length === 0 ? 'is empty' : `has no sub-folders (only ${names.length} file(s))`;
    throw new Error(`image folder ${dir} ${what}; expected ${LAYOUT}`);
  }
  return folders;
}

/**
 * A folder's class: its name is the label, the label with '/' written as '_' or '-' (a folder name
 * cannot hold a slash: "T-shirt/top"), or the class index.
 */
function folderClass(folder: string, labels: readonly string[]): number {
  const byName = labels.findIndex(
    (l) => l === folder || l.replace(/\//g, '_') === folder || l.replace(/\//g, '-') === folder,
  );
  if (byName >= 0) return byName;
  return /^\d+$/.test(folder) && Number(folder) < labels.length ? Number(folder) : -1;
}

function classNamesFor(
  folders: string[],
  labels: readonly string[] | undefined,
): { classNames: string[]; classOf: Map<string, number> } {
  if (!labels) return { classNames: folders, classOf: new Map(folders.map((f, i) => [f, i])) };
  const classOf = new Map(folders.map((f) => [f, folderClass(f, labels)]));
  const unknown = folders.filter((f) => classOf.get(f)! < 0);
  if (unknown.length > 0) {
    throw new Error(
      `folder(s) ${unknown.map((f) => `'${f}'`).join(', ')} are not class labels; each sub-folder must be named after ` +
        `one of: ${labels.join(', ')} (with '/' written as '_' or '-'), or be a class index 0-${labels.length - 1}`,
    );
  }
  return { classNames: [...labels], classOf };
}

/**
 * Each class's files in the order they are tried: sorted, or a seeded shuffle when limited. Each
 * class draws its own stream from the seed, so its subset depends on its own files only.
 */
async function candidates(dir: string, folders: string[], classOf: Map<string, number>, options: ImageFolderOptions) {
  const perClass: Candidate[][] = [];
  for (const folder of folders) {
    const classIndex = classOf.get(folder)!;
    const files = (await fs.promises.readdir(path.join(dir, folder))).filter(visible).sort(byCodeUnit);
    const order =
      options.limitPerClass === undefined
        ? files.map((_, i) => i)
        : permutation(files.length, mulberry32(options.seed ?? 0));
    perClass.push(Array.from(order, (k) => ({ classIndex, file: `${folder}/${files[k]}` })));
  }
  return perClass;
}

async function load(dir: string, file: string, inputShape: [number, number, number]): Promise<Outcome> {
  const full = path.join(dir, ...file.split('/'));
  let bytes: Buffer;
  try {
    if (!(await fs.promises.stat(full)).isFile()) {
      return {
        skipped: {
          file,
          code: 'NOT_A_FILE',
          message: 'not a regular file (class folders are not searched recursively)',
        },
      };
    }
    bytes = await fs.promises.readFile(full);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { skipped: { file, code: e.code ?? 'READ_ERROR', message: e.message } };
  }
  try {
    return { pixels: (await decodeImage(bytes, inputShape)).pixels };
  } catch (err) {
    if (err instanceof ImageDecodeError) return { skipped: { file, code: err.code, message: err.message } };
    throw err;
  }
}

/**
 * Decodes the candidates, CONCURRENCY at a time, in order. With a limit, a class's later files are
 * not started once it has `limit` decoded images. Results are then cut to the first `limit` decoded
 * ones in trial order: every file before the limit-th decodable one was certainly tried (fewer than
 * `limit` successes precede it), so the subset — and the skipped list — do not depend on timing.
 */
async function decodeAll(
  dir: string,
  queue: Candidate[],
  inputShape: [number, number, number],
  classes: number,
  limit: number,
  onProgress?: (done: number, total: number) => void,
): Promise<Map<Candidate, Outcome>> {
  const done = new Map<Candidate, Outcome>();
  const decoded = new Array<number>(classes).fill(0);
  let next = 0;
  const worker = async () => {
    while (next < queue.length) {
      const item = queue[next++];
      if (decoded[item.classIndex] >= limit) continue;
      const outcome = await load(dir, item.file, inputShape);
      if ('pixels' in outcome) decoded[item.classIndex]++;
      done.set(item, outcome);
      onProgress?.(done.size, queue.length);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return done;
}

/** Loads `dir` as a labelled data set for a model with input [H, W, C]; see the file comment. */
export async function loadImageFolder(
  dir: string,
  inputShape: [number, number, number],
  options: ImageFolderOptions = {},
): Promise<ImageFolder> {
  checkOptions(inputShape, options);
  const folders = await classFolders(dir);
  const { classNames, classOf } = classNamesFor(folders, options.labels);
  const perClass = await candidates(dir, folders, classOf, options);
  const limit = options.limitPerClass ?? Infinity;
  const done = await decodeAll(dir, perClass.flat(), inputShape, classNames.length, limit, options.onProgress);

  const taken: Array<{ item: Candidate; pixels: Float32Array }> = [];
  const skipped: SkippedFile[] = [];
  for (const items of perClass) {
    const kept: Array<{ item: Candidate; pixels: Float32Array }> = [];
    for (const item of items) {
      if (kept.length >= limit) break;
      const outcome = done.get(item);
      if (!outcome) continue;
      if ('pixels' in outcome) kept.push({ item, pixels: outcome.pixels });
      else skipped.push(outcome.skipped);
    }
    taken.push(...kept);
  }
  taken.sort((a, b) => a.item.classIndex - b.item.classIndex || byCodeUnit(a.item.file, b.item.file));
  if (taken.length === 0) {
    const reasons = skipped.slice(0, 3).map((s) => `${s.file}: ${s.code}`);
    throw new Error(
      `image folder ${dir} has no decodable images (${skipped.length} file(s) skipped${reasons.length ? `: ${reasons.join('; ')}` : ''}); expected ${LAYOUT}`,
    );
  }

  const size = inputShape[0] * inputShape[1] * inputShape[2];
  const pixels = new Float32Array(taken.length * size);
  taken.forEach((t, i) => pixels.set(t.pixels, i * size));
  return {
    pixels,
    labels: Int32Array.from(taken, (t) => t.item.classIndex),
    count: taken.length,
    classNames,
    files: taken.map((t) => t.item.file),
    skipped: skipped.sort((a, b) => byCodeUnit(a.file, b.file)),
  };
}

export interface UnlabelledImages {
  /** count × H × W × C values in [0, 1], row-major, in file order. */
  readonly pixels: Float32Array;
  readonly count: number;
  /** Path of each image relative to the folder, '/'-separated, sorted. */
  readonly files: string[];
  readonly skipped: SkippedFile[];
}

/**
 * Every image under `dir`, its sub-folders searched (names starting with '.' ignored), without
 * labels: for calibrating on a model's own predictions (`calibrate --labels predicted`), when the
 * team's images are not sorted by class. Undecodable files are skipped and listed, as above.
 */
export async function loadUnlabelledImages(
  dir: string,
  inputShape: [number, number, number],
  onProgress?: ImageFolderOptions['onProgress'],
): Promise<UnlabelledImages> {
  checkOptions(inputShape, {});
  let entries: string[];
  try {
    entries = (await fs.promises.readdir(dir, { recursive: true })).map((e) => e.split(path.sep).join('/'));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') throw new Error(`image folder ${dir} is not a directory`);
    throw err;
  }
  const shown = entries.filter((e) => e.split('/').every(visible)).sort(byCodeUnit);
  const isFile = await Promise.all(shown.map(async (e) => (await fs.promises.stat(path.join(dir, e))).isFile()));
  const queue = shown.filter((_, i) => isFile[i]).map((file) => ({ classIndex: 0, file }));
  const done = await decodeAll(dir, queue, inputShape, 1, Infinity, onProgress);
  const taken: Array<{ file: string; pixels: Float32Array }> = [];
  const skipped: SkippedFile[] = [];
  for (const item of queue) {
    const outcome = done.get(item)!;
    if ('pixels' in outcome) taken.push({ file: item.file, pixels: outcome.pixels });
    else skipped.push(outcome.skipped);
  }
  if (taken.length === 0) {
    throw new Error(`image folder ${dir} has no decodable images (${skipped.length} file(s) skipped)`);
  }
  const size = inputShape[0] * inputShape[1] * inputShape[2];
  const pixels = new Float32Array(taken.length * size);
  taken.forEach((t, i) => pixels.set(t.pixels, i * size));
  return { pixels, count: taken.length, files: taken.map((t) => t.file), skipped };
}
