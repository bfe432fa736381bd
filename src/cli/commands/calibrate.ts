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
  ATTACK_WEIGHTS,
  AttackWeights,
  calibrate,
  CALIBRATE_DEFAULTS,
  ClassReport,
  LabelledImages,
  UnionSummary,
} from '../../calibration/calibrate';
import {
  Calibration,
  calibrationPath,
  loadCalibration,
  readCalibration,
  saveCalibration,
  sidecarPath,
} from '../../calibration/calibrationFile';
import { deployedFprInterval } from '../../calibration/conformal';
import { HARDENING_DEFAULTS, HardeningSummary } from '../../calibration/hardening';
import { readThresholds, ThresholdImages } from '../../calibration/thresholds';
import { loadUnlabelledImages } from '../../data/imageFolder';
import { DEFAULT_THRESHOLD_PART, describeTestPart, testSplitParts } from '../../data/testSplitParts';
import { DEFAULT_FASHION_MNIST_DIR } from '../../data/fashionMnist';
import { MIN_CLASS_IMAGES } from '../../detectors/detector';
import { describeBackend, initBackend } from '../../engine/backends';
import { InferenceModel } from '../../engine/model';
import { defaultModelDir } from '../../util/paths';
import { logger } from '../../util/logger';
import { epsilonListOption, floatOption, intOption } from '../options';
import { stageProgress } from '../progress';
import { pickImages, readLabelledImages } from '../../data/labelledImages';

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
  thresholds?: 'unseen' | 'holdout';
  thresholdImages?: string;
  thresholdsOnly?: boolean;
  json?: boolean;
  addClassSpectra?: boolean;
  deepKnn?: boolean;
  boundaryMargin?: boolean;
  channelMahalanobis?: boolean;
  attackWeights?: AttackWeights;
  union: boolean;
  harden?: number;
  hardenImages: number;
  hardenSteps: number;
  hardenEpsilons: number[];
}

/**
 * The clean images thresholds are read on: a folder the user names (any images, not trained on), or
 * for Fashion-MNIST by default the threshold part of the test split (src/data/testSplitParts.ts);
 * undefined: the hold-out's training images, as before.
 */
async function thresholdImagesFor(
  opts: CalibrateCommandOptions,
  model: InferenceModel,
  progress: ReturnType<typeof stageProgress>,
): Promise<ThresholdImages | undefined> {
  if (opts.thresholdImages) {
    if (opts.thresholds === 'holdout')
      throw new Error('--threshold-images and --thresholds holdout contradict each other');
    progress.onStage(`reading the threshold images of ${opts.thresholdImages}`);
    const found = await loadUnlabelledImages(
      opts.thresholdImages,
      [...model.inputShape] as [number, number, number],
      progress.onProgress,
    );
    for (const s of found.skipped) logger.warn(`skipped ${s.file}: ${s.code}: ${s.message}`);
    return { pixels: found.pixels, count: found.count, source: `folder ${opts.thresholdImages}` };
  }
  const thresholds = opts.thresholds ?? (opts.images ? 'holdout' : 'unseen');
  if (thresholds === 'holdout') return undefined;
  if (opts.images) {
    throw new Error(
      "--thresholds unseen reads Fashion-MNIST's test split: with --images, name a folder of unseen clean images with --threshold-images DIR",
    );
  }
  const part = DEFAULT_THRESHOLD_PART;
  const test = await readLabelledImages({ labels: 'folders', data: opts.data, split: 'test' }, model);
  if (test.count !== part.of)
    throw new Error(`the test split has ${test.count} images, the threshold part expects ${part.of}`);
  const picked = pickImages(test, testSplitParts(part).threshold, model.imageSize, describeTestPart(part, 'threshold'));
  return { pixels: picked.pixels, count: picked.count, source: picked.source, testPart: part };
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
    .addOption(
      new Option(
        '--thresholds <source>',
        "clean images the thresholds are read on: 'unseen' (Fashion-MNIST's test split, its threshold part; the default without --images) or 'holdout' (training images of the hold-out; the default with --images)",
      ).choices(['unseen', 'holdout']),
    )
    .option(
      '--threshold-images <dir>',
      'read the thresholds on this folder of clean images the model was not trained on (every image under it)',
    )
    .option(
      '--thresholds-only',
      "keep the existing calibration's fitted detectors and re-read its thresholds only (--thresholds, --threshold-images)",
    )
    .option('--json', 'print the report as one JSON object on stdout (progress stays on stderr)')
    .option(
      '--deep-knn',
      'also fit the Deep k-NN detector (k nearest clean training activations per layer) and weigh it in the combined verdict; off by default: it costs screening throughput for no measured gain on the bundled model',
    )
    .option(
      '--boundary-margin',
      'also fit the boundary-margin detector (runner-up minus top logit: catches minimal-confidence attacks that stop at the decision boundary) and weigh it in the combined verdict',
    )
    .option(
      '--channel-mahalanobis',
      "also fit one Mahalanobis detector per conv layer on its channel means (Lee et al. 2018's per-layer feature) and give each its own input of the combined verdict",
    )
    .addOption(
      new Option(
        '--attack-weights <per>',
        "how the combined verdict weighs its calibration attacks: 'image' (every successful attack image alike: an attack that succeeds more often weighs more) or 'attack' (each calibration attack alike, and an \"either one\" term kept where it lifts the attack flagged least)",
      )
        .choices([...ATTACK_WEIGHTS])
        .default('image'),
    )
    .option(
      '--no-union',
      'keep the combined verdict the regression alone: no "either one" term for the detector that flags the most calibration attacks by itself (kept by default only where it flags ≥ 1 point more of them at the target rate)',
    )
    .option(
      '--harden <rounds>',
      'harden the combined verdict against attackers who know it: each round attacks fresh training images end to end aimed at the current verdict and refits it with them (src/calibration/hardening.ts; a few minutes per round; measured, it does not stop the attack it trains on: docs/figures.md)',
      intOption,
    )
    .option('--harden-images <n>', 'training images attacked per hardening round', intOption, HARDENING_DEFAULTS.images)
    .option('--harden-steps <n>', "steps of each hardening round's attack", intOption, HARDENING_DEFAULTS.steps)
    .option(
      '--harden-epsilons <list>',
      "comma-separated L∞ budgets of the hardening attacks (each round's images split evenly)",
      epsilonListOption,
      [...HARDENING_DEFAULTS.epsilons],
    )
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
      const out = opts.out ?? calibrationPath(opts.model);
      if (opts.thresholdsOnly) {
        const existing = loadCalibration(out, model.stored.sha256);
        const unseen = await thresholdImagesFor({ ...opts, thresholds: opts.thresholds ?? 'unseen' }, model, progress);
        if (!unseen)
          throw new Error('--thresholds-only re-reads thresholds on unseen images: not with --thresholds holdout');
        progress.onStage(`reading the thresholds on ${unseen.count} images`);
        const updated = await readThresholds(model, existing, unseen, progress.onProgress);
        progress.stop();
        saveCalibration(out, updated);
        const report = thresholdsReport(updated, out);
        process.stdout.write(opts.json ? JSON.stringify(report) + '\n' : thresholdsText(report));
        model.dispose();
        return;
      }
      const readStarted = Date.now();
      // Only the training split of Fashion-MNIST: the test split is the evaluation's.
      const limit = opts.fit + opts.holdout + opts.attacked;
      const read: LabelledImages = await readLabelledImages(
        {
          images: opts.images,
          labels: opts.labels,
          data: opts.data,
          split: 'train',
          limit: limit + (opts.harden ?? 0) * opts.hardenImages,
        },
        model,
        progress,
      );
      // Hardening attacks the training images after those calibration reads, so the split (and every
      // fitted detector) is the one the same command without --harden makes. A folder is read whole:
      // calibrate then takes hardening images from those its split leaves over.
      const [images, hardeningImages] = opts.images ? [read, undefined] : splitAt(read, limit, model.imageSize);
      if (opts.addClassSpectra) {
        progress.stop();
        await addClassSpectraTo(out, model, images, opts);
        model.dispose();
        return;
      }
      const thresholdImages = await thresholdImagesFor(opts, model, progress);
      const readSeconds = (Date.now() - readStarted) / 1000;
      const calibration = await calibrate(
        model,
        images,
        {
          ...opts,
          maxAccuracyCost: opts.maxCost,
          thresholdImages,
          hardeningImages,
          hardening: opts.harden
            ? {
                rounds: opts.harden,
                images: opts.hardenImages,
                steps: opts.hardenSteps,
                epsilons: opts.hardenEpsilons,
              }
            : undefined,
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
      saveCalibration(out, calibration);
      const files = [out, sidecarPath(out)]
        .filter((f) => fs.existsSync(f))
        .map((f) => ({ file: path.relative(process.cwd(), f), bytes: fs.statSync(f).size }));
      const report = calibrationReport(calibration, files, readSeconds);
      process.stdout.write(opts.json ? JSON.stringify(report) + '\n' : reportText(report));
      model.dispose();
    });
}

/** The first `count` images, and the rest (undefined when there are none). */
function splitAt(
  images: LabelledImages,
  count: number,
  size: number,
): [LabelledImages, { pixels: Float32Array; labels: Int32Array; count: number } | undefined] {
  if (images.count <= count) return [images, undefined];
  return [
    { ...images, pixels: images.pixels.subarray(0, count * size), labels: images.labels.subarray(0, count), count },
    {
      pixels: images.pixels.subarray(count * size),
      labels: images.labels.subarray(count),
      count: images.count - count,
    },
  ];
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
    thresholds: thresholdsSection(calibration),
    detectors,
    /** The combined verdict's "either one" term as chosen (src/calibration/verdictUnion.ts), or null. */
    union: (summary.union as UnionSummary | undefined) ?? null,
    /** The hardening rounds (src/calibration/hardening.ts), or null without --harden. */
    hardening: (summary.hardening as HardeningSummary | undefined) ?? null,
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
    ...thresholdLines(r.thresholds),
    ...Object.entries(r.detectors).map(
      ([name, m]) =>
        `  ${name.padEnd(20)} AUROC ${m.aurocOnCalibrationAttacks.toFixed(4)}  TPR@${r.targetFpr * 100}% FPR ${m.tprAtTargetFpr.toFixed(3)}`,
    ),
    ...(r.union ? [unionLine(r.union, r.targetFpr)] : []),
    ...(r.hardening ? hardeningLines(r.hardening) : []),
  ];
  return lines.join('\n') + '\n';
}

function hardeningLines(h: HardeningSummary): string[] {
  const pct1 = (x: number) => `${(x * 100).toFixed(1)} %`;
  return [
    `hardened in ${h.rounds.length} rounds (end-to-end attacks aimed at the verdict, ${h.settings.steps} steps, ε ${h.settings.epsilons.join(', ')}):`,
    ...h.rounds.map(
      (r, k) =>
        `  round ${k + 1}: ${r.misclassified} of ${r.attacked} misclassified; got through ${pct1(r.evadedBefore)} of them → ` +
        `${pct1(r.evadedAfter)} after the refit (in-sample); ${r.seconds.toFixed(0)} s`,
    ),
  ];
}

function unionLine(u: UnionSummary, targetFpr: number): string {
  const tpr = (x: number) => x.toFixed(3);
  const flagged = u.criterion === 'worstAttack' ? 'the calibration attack flagged least' : 'calibration attacks';
  return u.terms.length
    ? `combined verdict: the regression, or alone ${u.terms.map((t) => `${t.detector} (share ${t.share})`).join(' or ')} ` +
        `of the ${targetFpr * 100}% (${flagged}: ${tpr(u.regressionTprAtTargetFpr)} flagged → ${tpr(u.tprAtTargetFpr)})`
    : `combined verdict: the regression alone (no detector's own term flagged ≥ 1 point more of ${flagged})`;
}

/**
 * Where the thresholds were read and what rate they deliver: the split-conformal rate and its 95 %
 * interval over the draw of the threshold images (src/calibration/conformal.ts), at the default
 * rate and at 1 %; valid for new images like the threshold images, which is why they should be
 * images the model was not trained on.
 */
function thresholdsSection(calibration: Calibration) {
  const n = calibration.data.thresholdImages;
  const rates = [...new Set([calibration.defaultTargetFpr, 0.01])];
  return {
    source:
      calibration.data.thresholds?.source ??
      `${calibration.data.source}, second half of the hold-out (training images)`,
    images: n,
    deployedRate: rates.map((target) => ({ target, ...deployedFprInterval(n, target) })),
  };
}

function thresholdsReport(calibration: Calibration, file: string) {
  return { file: path.relative(process.cwd(), file), thresholds: thresholdsSection(calibration) };
}

const thresholdLines = (t: ReturnType<typeof thresholdsSection>) => [
  `thresholds read on ${t.images} images: ${t.source}`,
  ...t.deployedRate.map(
    (r) =>
      `  at target ${(r.target * 100).toFixed(1)} %: split-conformal rate ${(r.rate * 100).toFixed(2)} %, ` +
      `${(r.confidence * 100).toFixed(0)} % interval ${(r.low * 100).toFixed(2)}–${(r.high * 100).toFixed(2)} % on images like them`,
  ),
];

function thresholdsText(r: ReturnType<typeof thresholdsReport>): string {
  return [`wrote ${r.file}`, ...thresholdLines(r.thresholds)].join('\n') + '\n';
}
