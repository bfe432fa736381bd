/**
 * `npm run models`: writes the model directories that are made from installed packages rather
 * than committed (models/nsfw-mobilenetv2/ from nsfwjs), then calibrates MobileNetV2 offline:
 * it builds the corpus of Debian packages' pictures (src/models/corpus.ts, data/nsfw-corpus/) and
 * runs `advsieve calibrate` on its calibration split, labelled by its folders. Only Drawing and
 * Neutral have pictures; Hentai, Porn and Sexy get the pooled statistics of all classes, which
 * calibrate reports — a screen of images the model calls one of them compares them with clean
 * images in general. The evaluation split is left for `evaluate`-style checks, never calibrated on.
 *
 * The default sizes keep it to minutes on two cores (attacks dominate: MobileNetV2's input gradient
 * runs at ~3.4 img/s on wasm); scale them with flags or environment variables:
 *
 *   npm run models -- [--attacked N] [--fit N] [--holdout N] [--corpus-calibration N] [--corpus-evaluation N]
 *                     [--seed S] [--labels folders|predicted] [--recalibrate] [--no-calibrate]
 *   ADVSIEVE_MODELS_ATTACKED, _FIT, _HOLDOUT, _CORPUS_CALIBRATION, _CORPUS_EVALUATION; ADVSIEVE_MODELS_CALIBRATE=0
 *
 * A calibration already there that belongs to the extracted model is kept (--recalibrate redoes it).
 * The model calls much of the clip art Neutral (15 of the 40 evaluation pictures Drawing, when this
 * was written), so folder labels and its predictions disagree there; `--labels predicted` calibrates
 * on its predictions instead.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs } from 'util';
import { calibrationPath, readCalibration, sidecarPath } from '../calibration/calibrationFile';
import { checkModelFiles } from '../engine/modelStore';
import { Screener } from '../screening/screener';
import { buildCorpus, CORPUS_DEFAULTS, describeCorpus } from './corpus';
import { extractNsfwMobileNetV2, NSFW_MODEL_ID } from './nsfwMobileNetV2';

const root = path.resolve(__dirname, '..', '..');
const dir = path.join(root, 'models', NSFW_MODEL_ID);

/**
 * Calibration sizes for `npm run models` (see the file comment); calibrate's own defaults are for
 * 28×28 models. The fit set takes every image the hold-out leaves (1000 > the corpus).
 */
const MODELS_CALIBRATION_DEFAULTS = {
  fit: 1000,
  holdout: 40,
  attacked: 24,
  corpusCalibration: CORPUS_DEFAULTS.calibration,
  corpusEvaluation: CORPUS_DEFAULTS.evaluation,
} as const;

const { values: flags } = parseArgs({
  options: {
    fit: { type: 'string' },
    holdout: { type: 'string' },
    attacked: { type: 'string' },
    'corpus-calibration': { type: 'string' },
    'corpus-evaluation': { type: 'string' },
    seed: { type: 'string', default: String(CORPUS_DEFAULTS.seed) },
    labels: { type: 'string', default: 'folders' },
    recalibrate: { type: 'boolean', default: false },
    'no-calibrate': { type: 'boolean', default: false },
  },
});

/** A flag, else ADVSIEVE_MODELS_<NAME>, else the default. */
function count(flag: keyof typeof flags, env: string, fallback: number): number {
  const text = (flags[flag] as string | undefined) ?? process.env[`ADVSIEVE_MODELS_${env}`];
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${flag} / ADVSIEVE_MODELS_${env} must be a positive integer; got '${text}'`);
  return n;
}

function extract(): { sha256: string; labels: readonly string[] } {
  const { files, weightBytes } = extractNsfwMobileNetV2(dir);
  const { sha256, metadata } = checkModelFiles(dir); // what the service will check at start
  process.stdout.write(
    `wrote ${path.relative(process.cwd(), dir)}/: ${files.join(', ')} (${(weightBytes / 2 ** 20).toFixed(1)} MiB of weights, model sha256 ${sha256.slice(0, 16)}…)\n`,
  );
  return { sha256, labels: metadata.labels };
}

/** True when a calibration that the service would accept for this model is there already. */
function calibrated(sha256: string): boolean {
  try {
    const { calibration } = readCalibration(calibrationPath(dir), sha256);
    process.stdout.write(
      `kept ${path.relative(process.cwd(), calibrationPath(dir))} (calibrated ${calibration.createdAt}; --recalibrate to redo it)\n`,
    );
    return true;
  } catch {
    return false;
  }
}

function calibrate(sha256: string, labels: readonly string[]): void {
  const seed = Number(flags.seed);
  const corpusDir = path.join(root, CORPUS_DEFAULTS.out);
  const split = buildCorpus({
    out: corpusDir,
    calibration: count('corpus-calibration', 'CORPUS_CALIBRATION', MODELS_CALIBRATION_DEFAULTS.corpusCalibration),
    evaluation: count('corpus-evaluation', 'CORPUS_EVALUATION', MODELS_CALIBRATION_DEFAULTS.corpusEvaluation),
    seed,
    root: CORPUS_DEFAULTS.root,
  });
  process.stdout.write(
    `wrote ${path.relative(process.cwd(), corpusDir)}/{calibration,evaluation}: ${describeCorpus(split)} (calibration + evaluation)\n`,
  );
  const args = [
    path.join(root, 'bin', 'advsieve.js'),
    'calibrate',
    '--model',
    dir,
    '--images',
    path.join(corpusDir, 'calibration'),
    '--labels',
    flags.labels,
    '--fit',
    String(count('fit', 'FIT', MODELS_CALIBRATION_DEFAULTS.fit)),
    '--holdout',
    String(count('holdout', 'HOLDOUT', MODELS_CALIBRATION_DEFAULTS.holdout)),
    '--attacked',
    String(count('attacked', 'ATTACKED', MODELS_CALIBRATION_DEFAULTS.attacked)),
    '--seed',
    String(seed),
  ];
  process.stdout.write(`$ node ${args.map((a) => path.relative(process.cwd(), a) || a).join(' ')}\n`);
  const started = Date.now();
  const run = spawnSync(process.execPath, args, { stdio: 'inherit' });
  if (run.status !== 0) throw new Error(`calibrate exited with ${run.status ?? run.signal}`);
  // As the service loads it at start (src/server/service.ts): the model's hash, both files, every detector.
  const { calibration, sha256: version } = readCalibration(calibrationPath(dir), sha256);
  new Screener(calibration, labels);
  const sizes = [calibrationPath(dir), sidecarPath(calibrationPath(dir))]
    .filter((f) => fs.existsSync(f))
    .map((f) => `${path.basename(f)} ${(fs.statSync(f).size / 2 ** 20).toFixed(2)} MiB`);
  process.stdout.write(
    `calibrated ${NSFW_MODEL_ID} in ${((Date.now() - started) / 1000).toFixed(0)} s: ${sizes.join(', ')}; ` +
      `the service accepts it (calibration version ${version.slice(0, 16)}…)\n`,
  );
}

try {
  const { sha256, labels } = extract();
  const skip = flags['no-calibrate'] || process.env.ADVSIEVE_MODELS_CALIBRATE === '0';
  if (!skip && (flags.recalibrate || !calibrated(sha256))) calibrate(sha256, labels);
} catch (err) {
  process.stderr.write(`models: ${(err as Error).message}\n`);
  process.exit(1);
}
