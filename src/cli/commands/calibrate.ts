/**
 * `advsieve calibrate`: fits the detectors, the low-pass radius and the thresholds on the training
 * split of Fashion-MNIST (default) or on a folder with one sub-folder of images per class — or, with
 * `--labels predicted`, on any folder of images, labelled by the model's own predictions — and
 * writes calibration.json (and calibration.bin for large arrays) beside the model. It reports how
 * many fit and hold-out images each class got; a class with too few fit images uses the pooled
 * statistics of all classes (src/detectors/detector.ts, MIN_CLASS_IMAGES). Each long stage shows
 * its progress on stderr (src/cli/progress.ts) and its seconds in the report.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Command, Option } from 'commander';
import {
  addClassSpectra,
  calibrate,
  CALIBRATE_DEFAULTS,
  ClassReport,
  LabelledImages,
} from '../../calibration/calibrate';
import {
  Calibration,
  calibrationPath,
  readCalibration,
  saveCalibration,
  sidecarPath,
} from '../../calibration/calibrationFile';
import { DEFAULT_FASHION_MNIST_DIR } from '../../data/fashionMnist';
import { MIN_CLASS_IMAGES } from '../../detectors/detector';
import { describeBackend, initBackend } from '../../engine/backends';
import { InferenceModel } from '../../engine/model';
import { defaultModelDir } from '../../util/paths';
import { logger } from '../../util/logger';
import { floatOption, intOption } from '../options';
import { stageProgress } from '../progress';
import { readLabelledImages } from '../../data/labelledImages';

interface CalibrateCommandOptions {
  model: string;
  data: string;
  images?: string;
  labels: 'folders' | 'predicted';
  out?: string;
  fit: number;
  holdout: number;
  attacked: number;
  seed: number;
  targetFpr: number;
  maxCost: number;
  json?: boolean;
  addClassSpectra?: boolean;
}

export function registerCalibrate(program: Command): void {
  program
    .command('calibrate')
    .description('fit the detectors, low-pass radius and thresholds on training images; writes calibration.json')
    .option('--model <dir>', 'model directory', defaultModelDir())
    .option('--data <dir>', 'Fashion-MNIST IDX directory (its training split is used)', DEFAULT_FASHION_MNIST_DIR)
    .option(
      '--images <dir>',
      "calibrate on a folder instead: one sub-folder of images per class, named by the class's label ('/' written '_') or its index",
    )
    .addOption(
      new Option(
        '--labels <source>',
        "where --images' classes come from: 'folders' (one sub-folder per class) or 'predicted' (any folder; the model's predictions)",
      )
        .choices(['folders', 'predicted'])
        .default('folders'),
    )
    .option('--out <file>', 'output file (default: <model>/calibration.json)')
    .option('--fit <n>', 'clean images the detectors are fitted on', intOption, CALIBRATE_DEFAULTS.fit)
    .option('--holdout <n>', 'clean images thresholds are set on', intOption, CALIBRATE_DEFAULTS.holdout)
    .option('--attacked <n>', 'images attacked for calibration', intOption, CALIBRATE_DEFAULTS.attacked)
    .option('--seed <n>', 'random seed (split, attacks)', intOption, CALIBRATE_DEFAULTS.seed)
    .option(
      '--target-fpr <x>',
      'default false-positive rate of the thresholds',
      floatOption,
      CALIBRATE_DEFAULTS.targetFpr,
    )
    .option(
      '--max-cost <x>',
      'clean accuracy the low-pass defense may cost',
      floatOption,
      CALIBRATE_DEFAULTS.maxAccuracyCost,
    )
    .option('--json', 'print the report as one JSON object on stdout (progress stays on stderr)')
    .option(
      '--add-class-spectra',
      "only add the classes' mean spectra to the existing calibration file, changing nothing else in it (pass the options it was made with)",
    )
    .action(async (opts: CalibrateCommandOptions) => {
      const started = Date.now();
      const backend = await initBackend();
      logger.info(describeBackend(backend));
      const model = await InferenceModel.load(opts.model);
      const progress = stageProgress('calibrate', started);
      const readStarted = Date.now();
      // Only the training split of Fashion-MNIST: the test split is the evaluation's.
      const images: LabelledImages = await readLabelledImages(
        {
          images: opts.images,
          labels: opts.labels,
          data: opts.data,
          split: 'train',
          limit: opts.fit + opts.holdout + opts.attacked,
        },
        model,
        progress,
      );
      const readSeconds = (Date.now() - readStarted) / 1000;
      if (opts.addClassSpectra) {
        progress.stop();
        await addClassSpectraTo(opts.out ?? calibrationPath(opts.model), model, images, opts);
        model.dispose();
        return;
      }
      const calibration = await calibrate(
        model,
        images,
        {
          ...opts,
          maxAccuracyCost: opts.maxCost,
          command: `npx advsieve ${process.argv.slice(2).join(' ')}`,
          onClasses: (report) => {
            progress.stop();
            if (report.pooled.length > 0) process.stderr.write(`calibrate: ${pooledSentence(report.pooled)}\n`);
          },
          onStage: progress.onStage,
          onProgress: progress.onProgress,
        },
        model.stored.sha256,
      );
      progress.stop();
      const out = opts.out ?? calibrationPath(opts.model);
      saveCalibration(out, calibration);
      const files = [out, sidecarPath(out)]
        .filter((f) => fs.existsSync(f))
        .map((f) => ({ file: path.relative(process.cwd(), f), bytes: fs.statSync(f).size }));
      const report = calibrationReport(calibration, files, readSeconds);
      process.stdout.write(opts.json ? JSON.stringify(report) + '\n' : reportText(report));
      model.dispose();
    });
}

/** `--add-class-spectra`: the calibration file as it was, with the class spectra added. */
async function addClassSpectraTo(
  file: string,
  model: InferenceModel,
  images: LabelledImages,
  opts: CalibrateCommandOptions,
): Promise<void> {
  const started = Date.now();
  const { calibration } = readCalibration(file, model.stored.sha256);
  const added = await addClassSpectra(model, images, opts, calibration);
  saveCalibration(file, added.calibration);
  const spectra = added.calibration.classSpectra!;
  const report = {
    file: path.relative(process.cwd(), file),
    bytes: fs.statSync(file).size,
    classImages: spectra.images,
    rings: spectra.radial[0]?.length ?? 0,
    map: `${spectra.mapHeight}×${spectra.mapWidth}`,
    expectationError: added.expectationError,
    seconds: (Date.now() - started) / 1000,
  };
  process.stdout.write(
    opts.json
      ? JSON.stringify(report) + '\n'
      : `added class spectra (${report.rings} rings, ${report.map} maps, ${spectra.images.join('/')} images) to ${report.file} ` +
          `(${(report.bytes / 2 ** 20).toFixed(2)} MiB) in ${report.seconds.toFixed(1)} s; the fit set reproduced the stored ` +
          `class expectations to ${report.expectationError.toExponential(2)}\n`,
  );
}

const pooledSentence = (pooled: readonly string[]) =>
  `${pooled.length} class(es) with fewer than ${MIN_CLASS_IMAGES} fit images use the pooled statistics of all ` +
  `classes (their scores compare with clean images in general): ${pooled.join(', ')}`;

/** What a calibration run reports, as text or (--json) as it is. */
function calibrationReport(
  calibration: Calibration,
  files: Array<{ file: string; bytes: number }>,
  readSeconds: number,
) {
  const { data, lowPass, summary } = calibration;
  const detectors = Object.fromEntries(
    Object.entries(summary).flatMap(([name, s]) =>
      typeof s === 'object' && s !== null && 'aurocOnCalibrationAttacks' in s
        ? [[name, s as { aurocOnCalibrationAttacks: number; tprAtTargetFpr: number }]]
        : [],
    ),
  );
  const classes: ClassReport = {
    fit: data.classImages ?? {},
    holdout: data.holdoutClassImages ?? {},
    pooled: data.pooledClasses ?? [],
  };
  return {
    files,
    images: { fit: data.fit, holdout: data.holdout, adversarial: data.adversarial, attacks: data.attacks },
    classes,
    lowPass: {
      kind: lowPass.kind,
      radius: lowPass.radius,
      cleanAccuracy: lowPass.cleanAccuracy,
      filteredAccuracy: lowPass.filteredAccuracy,
      adversarialAccuracy: lowPass.adversarialAccuracy,
    },
    targetFpr: calibration.defaultTargetFpr,
    detectors,
    /** Reading the images, then calibrate's stages. */
    seconds: {
      read: readSeconds,
      ...(summary.stageSeconds as Record<string, number>),
      total: readSeconds + (summary.seconds as number),
    },
  };
}

function reportText(r: ReturnType<typeof calibrationReport>): string {
  const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
  const labels = Object.keys(r.classes.fit);
  const width = Math.max(5, ...labels.map((l) => l.length));
  const lines = [
    `wrote ${r.files.map((f) => `${f.file} (${(f.bytes / 2 ** 20).toFixed(2)} MiB)`).join(', ')}`,
    `${r.images.fit} fit, ${r.images.holdout} hold-out, ${r.images.adversarial} adversarial images; ${r.seconds.total.toFixed(0)} s (` +
      Object.entries(r.seconds)
        .filter(([k]) => k !== 'total')
        .map(([k, v]) => `${k} ${v.toFixed(0)}`)
        .join(', ') +
      ')',
    `images per class:`,
    `  ${'class'.padEnd(width)}   fit  hold-out`,
    ...labels.map(
      (l) =>
        `  ${l.padEnd(width)} ${String(r.classes.fit[l]).padStart(5)} ${String(r.classes.holdout[l] ?? 0).padStart(9)}` +
        (r.classes.pooled.includes(l) ? '  pooled' : ''),
    ),
    ...(r.classes.pooled.length > 0 ? [pooledSentence(r.classes.pooled)] : []),
    `low-pass: ${r.lowPass.kind} radius ${r.lowPass.radius}: clean ${pct(r.lowPass.cleanAccuracy)} → ` +
      `${pct(r.lowPass.filteredAccuracy)}, calibration attacks ${pct(r.lowPass.adversarialAccuracy)}`,
    ...Object.entries(r.detectors).map(
      ([name, m]) =>
        `  ${name.padEnd(20)} AUROC ${m.aurocOnCalibrationAttacks.toFixed(4)}  TPR@${r.targetFpr * 100}% FPR ${m.tprAtTargetFpr.toFixed(3)}`,
    ),
  ];
  return lines.join('\n') + '\n';
}
