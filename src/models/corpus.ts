/**
 * An offline image corpus for the nsfwjs MobileNetV2 (src/models/nsfwMobileNetV2.ts): class folders
 * of real pictures that Debian packages ship, so that `npm run models` can calibrate the model, and
 * anyone can evaluate it, without a download. Only two of its five classes have such pictures —
 * clip art for Drawing, wallpaper photographs for Neutral; Hentai, Porn and Sexy have none, on
 * purpose: nothing explicit is ever generated, fetched or committed, and calibration gives those
 * classes the pooled statistics of all classes (MIN_CLASS_IMAGES), which it reports.
 *
 *   OUT/calibration/<Class>/<package>--<path, '/' written '--'>   what `calibrate --images` reads
 *   OUT/evaluation/<Class>/…                                        held out: never calibrated on
 *   OUT/corpus.json                                                 sources, seed and every file
 *
 * A picture shipped in several sizes or variants (a Plasma wallpaper's resolutions, a GNOME
 * background's light and dark versions) is one picture: its smallest file is taken, and it lands in
 * one split only, so the evaluation never sees a resized copy of a calibration image. Each class's
 * pictures are shuffled by the seed in their own stream (adding a source to one class leaves the
 * other's split as it was); the first go to evaluation, the rest to calibration. Files are linked
 * (or copied with --copy), never converted: the service's decoder reads them as it reads requests.
 *
 *   node dist/models/corpus.js [--out DIR] [--calibration N] [--evaluation N] [--seed S] [--root DIR] [--copy]
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs } from 'util';
import { mulberry32, permutation } from '../train/random';

/** A directory of one Debian package and what in it counts as a picture of which class. */
export interface CorpusSource {
  readonly package: string;
  /** Relative to the file-system root (tests pass another root). */
  readonly dir: string;
  readonly className: string;
  /** Relative paths (always '/'-separated) that are pictures. */
  readonly include: RegExp;
  /** The picture a file shows: files with one key are one picture in several sizes or variants. */
  readonly picture: (relative: string) => string;
}

// Formats the service decodes (src/images/decode.ts); SVG is refused there, so it is not taken here.
const IMAGE = String.raw`\.(png|jpe?g|webp)$`;

export const CORPUS_SOURCES: readonly CorpusSource[] = [
  {
    // 6 900 PNGs in 22 topic folders (animals, food, buildings, …): drawings by construction.
    package: 'openclipart-png',
    dir: 'usr/share/openclipart/png',
    className: 'Drawing',
    include: new RegExp(IMAGE, 'i'),
    picture: (rel) => rel,
  },
  {
    // <Name>/contents/images/<W>x<H>.<ext>: one picture per wallpaper, several resolutions.
    package: 'plasma-workspace-wallpapers',
    dir: 'usr/share/wallpapers',
    className: 'Neutral',
    include: new RegExp(String.raw`^[^/]+/contents/images/[^/]+` + IMAGE, 'i'),
    picture: (rel) => rel.split('/')[0],
  },
  {
    // <name>-l and <name>-d: a light and a dark version of one picture.
    package: 'gnome-backgrounds',
    dir: 'usr/share/backgrounds/gnome',
    className: 'Neutral',
    include: new RegExp(String.raw`^[^/]+` + IMAGE, 'i'),
    picture: (rel) => rel.replace(/(-[ld])?\.[^.]+$/, ''),
  },
  {
    // Photographs only (desktop/ and abstract/ are graphics); <Name>_<W>x<H> are resolutions of <Name>.
    package: 'mate-backgrounds',
    dir: 'usr/share/backgrounds/mate/nature',
    className: 'Neutral',
    include: new RegExp(String.raw`^[^/]+` + IMAGE, 'i'),
    picture: (rel) => rel.replace(/(_\d+x\d+)?\.[^.]+$/, ''),
  },
];

export const CORPUS_DEFAULTS = {
  out: path.join('data', 'nsfw-corpus'),
  /** Per class: enough for calibration's fit and hold-out sets (both need 20), small enough for minutes. */
  calibration: 100,
  evaluation: 40,
  seed: 1,
  root: '/',
} as const;

export interface CorpusOptions {
  readonly out: string;
  /** Pictures per class for the calibration split, and for the evaluation split (at most). */
  readonly calibration: number;
  readonly evaluation: number;
  readonly seed: number;
  /** Where the sources' directories are looked up ('/' but in tests). */
  readonly root: string;
  /** Copy the files instead of linking them (for a corpus that must outlive the packages). */
  readonly copy?: boolean;
  readonly sources?: readonly CorpusSource[];
}

export interface CorpusPicture {
  readonly package: string;
  /** The picture's file, absolute. */
  readonly file: string;
  /** Its name in the class folder: unique across sources. */
  readonly name: string;
}

export interface CorpusSplit {
  readonly calibration: Readonly<Record<string, readonly CorpusPicture[]>>;
  readonly evaluation: Readonly<Record<string, readonly CorpusPicture[]>>;
}

export class MissingCorpusSourceError extends Error {
  constructor(
    readonly packageName: string,
    readonly dir: string,
  ) {
    super(`${dir} is missing: install the Debian package ${packageName} (apt-get install ${packageName})`);
    this.name = 'MissingCorpusSourceError';
  }
}

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** A source's pictures, each its smallest file (ties: the first name), sorted by name. */
export function sourcePictures(source: CorpusSource, root: string): CorpusPicture[] {
  const dir = path.join(root, source.dir);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new MissingCorpusSourceError(source.package, dir);
  const smallest = new Map<string, { rel: string; bytes: number }>();
  const files = fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((e) => e.split(path.sep).join('/'))
    .filter((rel) => source.include.test(rel) && rel.split('/').every((part) => !part.startsWith('.')))
    .sort(byCodeUnit);
  for (const rel of files) {
    const stat = fs.statSync(path.join(dir, rel));
    if (!stat.isFile()) continue;
    const key = source.picture(rel);
    const best = smallest.get(key);
    if (!best || stat.size < best.bytes) smallest.set(key, { rel, bytes: stat.size });
  }
  return [...smallest.values()]
    .map(({ rel }) => ({
      package: source.package,
      file: path.join(dir, rel),
      name: `${source.package}--${rel.split('/').join('--')}`,
    }))
    .sort((a, b) => byCodeUnit(a.name, b.name));
}

/**
 * Splits each class's pictures (see the file comment). A class with fewer than calibration +
 * evaluation pictures splits what it has in the same proportion.
 */
export function splitCorpus(
  pictures: Readonly<Record<string, readonly CorpusPicture[]>>,
  options: Pick<CorpusOptions, 'calibration' | 'evaluation' | 'seed'>,
): CorpusSplit {
  const calibration: Record<string, CorpusPicture[]> = {};
  const evaluation: Record<string, CorpusPicture[]> = {};
  for (const className of Object.keys(pictures).sort(byCodeUnit)) {
    const all = pictures[className];
    const order = Array.from(permutation(all.length, mulberry32(options.seed)), (k) => all[k]);
    const wanted = options.calibration + options.evaluation;
    const held = wanted > all.length ? Math.floor((options.evaluation * all.length) / wanted) : options.evaluation;
    evaluation[className] = order.slice(0, held);
    calibration[className] = order.slice(held, held + options.calibration);
  }
  return { calibration, evaluation };
}

function checkOptions(options: CorpusOptions): void {
  for (const key of ['calibration', 'evaluation', 'seed'] as const) {
    const v = options[key];
    if (!Number.isInteger(v) || v < (key === 'seed' ? 0 : 1))
      throw new RangeError(`${key} must be an integer ≥ ${key === 'seed' ? 0 : 1}; got ${v}`);
  }
}

/** Builds OUT (see the file comment), replacing the two splits a previous run wrote; returns the split. */
export function buildCorpus(options: CorpusOptions): CorpusSplit {
  checkOptions(options);
  const pictures: Record<string, CorpusPicture[]> = {};
  for (const source of options.sources ?? CORPUS_SOURCES) {
    (pictures[source.className] ??= []).push(...sourcePictures(source, options.root));
  }
  const split = splitCorpus(pictures, options);
  fs.mkdirSync(options.out, { recursive: true });
  for (const [name, part] of Object.entries(split)) {
    const partDir = path.join(options.out, name);
    fs.rmSync(partDir, { recursive: true, force: true });
    for (const [className, list] of Object.entries(part as CorpusSplit['calibration'])) {
      const dir = path.join(partDir, className);
      fs.mkdirSync(dir, { recursive: true });
      for (const p of list) {
        if (options.copy) fs.copyFileSync(p.file, path.join(dir, p.name));
        else fs.symlinkSync(p.file, path.join(dir, p.name));
      }
    }
  }
  const record = {
    seed: options.seed,
    requested: { calibration: options.calibration, evaluation: options.evaluation },
    sources: (options.sources ?? CORPUS_SOURCES).map((s) => ({ package: s.package, dir: s.dir, className: s.className })),
    ...split,
  };
  fs.writeFileSync(path.join(options.out, 'corpus.json'), JSON.stringify(record, null, 1) + '\n');
  return split;
}

/** "Drawing 100 + 40, Neutral 41 + 14": calibration + evaluation pictures per class. */
export function describeCorpus(split: CorpusSplit): string {
  return Object.keys(split.calibration)
    .map((c) => `${c} ${split.calibration[c].length} + ${split.evaluation[c].length}`)
    .join(', ');
}

function main(): void {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: CORPUS_DEFAULTS.out },
      calibration: { type: 'string', default: String(CORPUS_DEFAULTS.calibration) },
      evaluation: { type: 'string', default: String(CORPUS_DEFAULTS.evaluation) },
      seed: { type: 'string', default: String(CORPUS_DEFAULTS.seed) },
      root: { type: 'string', default: CORPUS_DEFAULTS.root },
      copy: { type: 'boolean', default: false },
    },
  });
  const split = buildCorpus({
    out: values.out,
    calibration: Number(values.calibration),
    evaluation: Number(values.evaluation),
    seed: Number(values.seed),
    root: values.root,
    copy: values.copy,
  });
  process.stdout.write(`wrote ${values.out}/{calibration,evaluation}: ${describeCorpus(split)} (calibration + evaluation)\n`);
}

if (require.main === module) {
  try {
    main();
  } catch (err) {
    process.stderr.write(`corpus: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
