/**
 * `advsieve calibrate`: fits the detectors, the low-pass radius and the thresholds on the training
 * split of Fashion-MNIST (default) or on a folder with one sub-folder of images per class — or, with
 * `--labels predicted`, on any folder of images, labelled by the model's own predictions — and
 * writes calibration.json beside the model. It reports how many fit images each class got; a class
 * with too few uses the pooled statistics of all classes (src/detectors/detector.ts, MIN_CLASS_IMAGES).
 */
import * as path from 'path';
import { Command, Option } from 'commander';
import { calibrate, CALIBRATE_DEFAULTS, LabelledImages } from '../../calibration/calibrate';
import { calibrationPath, saveCalibration } from '../../calibration/calibrationFile';
import { DEFAULT_FASHION_MNIST_DIR, loadFashionMnist } from '../../data/fashionMnist';
import { loadImageFolder, loadUnlabelledImages } from '../../data/imageFolder';
import { argmax, MIN_CLASS_IMAGES } from '../../detectors/detector';
import { probabilitiesInBatches } from '../../screening/inProcess';
import { describeBackend, initBackend } from '../../engine/backends';
import { InferenceModel } from '../../engine/model';
import { defaultModelDir } from '../../util/paths';
import { logger } from '../../util/logger';
import { floatOption, intOption } from '../options';
import { progressBar } from '../progress';

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
}

async function labelledImages(opts: CalibrateCommandOptions, model: InferenceModel): Promise<LabelledImages> {
  if (opts.labels === 'predicted') {
    if (!opts.images) throw new Error('--labels predicted labels the images of a folder: pass --images DIR');
    const found = await loadUnlabelledImages(opts.images, [...model.inputShape] as [number, number, number]);
    for (const s of found.skipped) logger.warn(`skipped ${s.file}: ${s.code}: ${s.message}`);
    process.stderr.write(`calibrate: labelling ${found.count} images of ${opts.images} by the model's predictions\n`);
    const probs = await probabilitiesInBatches(model, found.pixels, found.count);
    return {
      pixels: found.pixels,
      labels: Int32Array.from(probs, (p) => argmax(p)),
      count: found.count,
      source: `folder ${opts.images}, labelled by the model's predictions`,
    };
  }
  if (opts.images) {
    const folder = await loadImageFolder(opts.images, [...model.inputShape] as [number, number, number], {
      labels: model.metadata.labels,
    });
    for (const s of folder.skipped) logger.warn(`skipped ${s.file}: ${s.code}: ${s.message}`);
    return { pixels: folder.pixels, labels: folder.labels, count: folder.count, source: `folder ${opts.images}` };
  }
  const [h, w, c] = model.inputShape;
  if (h !== 28 || w !== 28 || c !== 1) {
    throw new Error(`the model takes ${h}×${w}×${c} images, Fashion-MNIST is 28×28×1: pass --images DIR`);
  }
  // Only the training split: the test split is the evaluation's.
  const set = loadFashionMnist('train', opts.data, opts.fit + opts.holdout + opts.attacked);
  return { pixels: set.pixels, labels: Int32Array.from(set.labels), count: set.count, source: 'fashion-mnist train' };
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
    .action(async (opts: CalibrateCommandOptions) => {
      const backend = await initBackend();
      logger.info(describeBackend(backend));
      const model = await InferenceModel.load(opts.model);
      const images = await labelledImages(opts, model);
      let bar: ReturnType<typeof progressBar> | undefined;
      const calibration = await calibrate(
        model,
        images,
        {
          ...opts,
          maxAccuracyCost: opts.maxCost,
          command: `npx advsieve ${process.argv.slice(2).join(' ')}`,
          onClasses: (counts, pooled) => {
            const width = Math.max(...Object.keys(counts).map((l) => l.length));
            process.stderr.write('calibrate: fit images per class\n');
            for (const [label, n] of Object.entries(counts)) process.stderr.write(`  ${label.padEnd(width)} ${n}\n`);
            if (pooled.length > 0) {
              process.stderr.write(
                `calibrate: ${pooled.length} class(es) with fewer than ${MIN_CLASS_IMAGES} fit images use the pooled ` +
                  `statistics of all classes (their scores compare with clean images in general): ${pooled.join(', ')}\n`,
              );
            }
          },
          onStage: (stage) => {
            bar?.stop();
            process.stderr.write(`calibrate: ${stage}\n`);
            bar = undefined;
          },
          onProgress: (done, total) => {
            if (!bar) {
              bar = progressBar('  [{bar}] {value}/{total} {eta_formatted}');
              bar.start(total, 0);
            }
            bar.update(done);
          },
        },
        model.stored.sha256,
      );
      bar?.stop();
      const out = opts.out ?? calibrationPath(opts.model);
      saveCalibration(out, calibration);
      const lp = calibration.lowPass;
      process.stdout.write(
        `wrote ${path.relative(process.cwd(), out)} (${calibration.data.fit} fit, ${calibration.data.holdout} hold-out, ` +
          `${calibration.data.adversarial} adversarial images; ${(calibration.summary.seconds as number).toFixed(0)} s)\n` +
          `low-pass: ${lp.kind} radius ${lp.radius}: clean ${(lp.cleanAccuracy * 100).toFixed(2)} % → ` +
          `${(lp.filteredAccuracy * 100).toFixed(2)} %, calibration attacks ${(lp.adversarialAccuracy * 100).toFixed(2)} %\n`,
      );
      for (const [name, s] of Object.entries(calibration.summary)) {
        if (typeof s !== 'object' || s === null) continue;
        const m = s as { aurocOnCalibrationAttacks: number; tprAtTargetFpr: number };
        process.stdout.write(
          `  ${name.padEnd(20)} AUROC ${m.aurocOnCalibrationAttacks.toFixed(4)}  TPR@${calibration.defaultTargetFpr * 100}% FPR ${m.tprAtTargetFpr.toFixed(3)}\n`,
        );
      }
      model.dispose();
    });
}
