/**
 * The evaluation: on N seeded test images, clean accuracy; per attack, its success rate, every
 * detector's AUROC and TPR at 5 % FPR (ours, the combined verdict and the Feature Squeezing
 * baseline), the accuracy of each defense under it, and the research claims (spectra, feature
 * trajectory, promotion–suppression). Test images only: calibration never saw them.
 *
 * Conventions: success and detection are measured on the images the model classified right
 * before the attack (an attack cannot "succeed" on an image that was already wrong); positives
 * for AUROC are the successful adversarial images, negatives every clean test image; defense
 * accuracies are over all N images against their true labels.
 */
import { detectorAwareTarget, lowPassTarget } from '../attacks/adaptive';
import type { AttackTarget } from '../attacks/attack';
import { getAttack } from '../attacks/registry';
import { attackInBatches } from '../attacks/runAttack';
import { modelTarget } from '../attacks/target';
import type { ActivationDistanceState } from '../detectors/activationDistance';
import { argmax } from '../detectors/detector';
import { featureSqueezing } from '../detectors/featureSqueezing';
import { COMBINED } from '../detectors/registry';
import { makeDefense } from '../defenses/registry';
import type { ImageOutput, InferenceModel } from '../engine/model';
import { probabilitiesInBatches, runInBatches } from '../screening/inProcess';
import type { Screener } from '../screening/screener';
import { mulberry32 } from '../train/random';
import {
  classMeans,
  logPowerSpectra,
  promotionSuppression,
  PromotionSuppressionType,
  spectrumClaim,
  SpectrumClaim,
  trajectoryClaim,
  TrajectoryLayer,
} from './analysis';
import { AttackSpec } from './attackSuite';
import type { FalsePositiveReport } from './falsePositives';
import { auroc, aurocInterval, rocCurve, tprAtFpr } from './metrics';

export const REPORT_FPR = 0.05;
export const FEATURE_SQUEEZING = 'featureSqueezing';

export interface DetectorRow {
  readonly name: string;
  readonly auroc: number;
  /** The combined verdict's row: a 95 % bootstrap interval of its AUROC (metrics.ts aurocInterval). */
  readonly aurocInterval?: [number, number];
  /** At the threshold that holds 5 % FPR on these clean test images. */
  readonly tprAtFpr5: number;
  /** At calibration's threshold (set on training hold-out images), as deployed. */
  readonly tprAtCalibratedThreshold: number;
}

export interface DefenseRow {
  readonly name: string;
  /** Accuracy on the attacked images. */
  readonly accuracy: number;
  /** Accuracy on the clean images with this defense. */
  readonly cleanAccuracy: number;
}

export interface AttackRow {
  readonly name: string;
  readonly method: string;
  readonly epsilon: number | null;
  readonly steps: number | null;
  readonly targeted: boolean;
  /** A row towards one class (every image of another class): its index. */
  readonly targetClass: number | null;
  readonly adaptive: boolean;
  readonly adaptiveTo: string | null;
  /** Adaptive rows: misclassified and not flagged; others: misclassified (targeted: reached the target). */
  readonly successRate: number;
  readonly misclassificationRate: number;
  /** Misclassified and not flagged by the combined verdict at calibration's threshold. */
  readonly evasionRate: number;
  readonly successful: number;
  /** The images the rates are of (right before the attack, not of the row's target class). */
  readonly eligible: number;
  readonly misclassified: number;
  readonly evaded: number;
  readonly meanLinf: number;
  readonly meanL2: number;
  readonly detectors: DetectorRow[];
  readonly defenses: DefenseRow[];
  readonly spectrum: SpectrumClaim;
  readonly trajectory: TrajectoryLayer[];
  readonly promotionSuppression: Record<PromotionSuppressionType, number> & { meanDrop: number; meanRise: number };
  readonly seconds: number;
}

export interface EvaluationResult {
  readonly images: number;
  readonly seed: number;
  readonly cleanAccuracy: number;
  /** Clean false-positive rate of each detector at calibration's thresholds (target: calibration's FPR). */
  readonly cleanFalsePositiveRate: Record<string, number>;
  /** The clean rate on every image of the evaluation's pool, with intervals (./falsePositives.ts; set by the command). */
  readonly falsePositives?: FalsePositiveReport;
  readonly defensesClean: DefenseRow[];
  readonly attacks: AttackRow[];
  readonly seconds: number;
}

/** What the report's plots need besides the JSON. */
export interface EvaluationArtifacts {
  readonly roc: Record<string, Array<{ name: string; fpr: number[]; tpr: number[] }>>;
  readonly cleanSpectra: Float32Array[];
  readonly adversarialSpectra: Record<string, Float32Array[]>;
  readonly perturbationSpectra: Record<string, Float32Array[]>;
  /** Iterative rows that trace their loss: the mean loss after each step (restarts one after another). */
  readonly lossCurves: Record<string, number[]>;
  /**
   * Per-image scores, what a merge of parts run apart needs to pool AUROC and ROC exactly (./merge.ts);
   * absent from a merge of parts that lacked them.
   */
  readonly scores?: EvaluationScores;
}

/**
 * Every detector's score (`names`: the screening detectors, combined, feature squeezing) on each
 * clean image and on each row's misclassified adversarial images: the negatives and positives of
 * the AUROC and ROC. Written beside evaluation.json as scores.json.
 */
export interface EvaluationScores {
  readonly names: readonly string[];
  readonly clean: number[][];
  readonly rows: Record<string, { positives: number[][]; loss?: { sum: number[]; images: number[] } }>;
}

interface SetAnalysis {
  readonly outputs: ImageOutput[];
  readonly predicted: Int32Array;
  /** Per image: every screening detector, combined, then feature squeezing. */
  readonly scores: number[][];
  /** Defense name → predicted classes. */
  readonly defended: Record<string, Int32Array>;
}

const BASELINE_DEFENSES = ['bitdepth', 'median', 'jpeg'] as const;

/**
 * Each detector's row from the scores of a row's positives (the misclassified adversarial images)
 * and negatives (the clean images), one score per detector in `names` order; `thresholds` are the
 * deployed ones (feature squeezing has none: its TPR at the 5 % this set's clean images allow).
 */
export function detectorRows(
  names: readonly string[],
  positives: readonly number[][],
  negatives: readonly number[][],
  thresholds: Record<string, number | undefined>,
): DetectorRow[] {
  return names.map((name, k) => {
    if (!positives.length) return { name, auroc: NaN, tprAtFpr5: NaN, tprAtCalibratedThreshold: NaN };
    const pos = positives.map((s) => s[k]);
    const neg = negatives.map((s) => s[k]);
    const threshold = thresholds[name] ?? Infinity;
    return {
      name,
      auroc: auroc(pos, neg),
      ...(name === COMBINED ? { aurocInterval: aurocInterval(pos, neg) } : {}),
      tprAtFpr5: tprAtFpr(pos, neg, REPORT_FPR),
      tprAtCalibratedThreshold:
        name === FEATURE_SQUEEZING
          ? tprAtFpr(pos, neg, REPORT_FPR)
          : pos.filter((s) => s > threshold).length / pos.length,
    };
  });
}

/** Each detector's ROC curve for the report's plot (the diagonal without positives). */
export function rocCurves(
  names: readonly string[],
  positives: readonly number[][],
  negatives: readonly number[][],
): EvaluationArtifacts['roc'][string] {
  return names.map((name, k) =>
    positives.length
      ? {
          name,
          ...rocCurve(
            positives.map((s) => s[k]),
            negatives.map((s) => s[k]),
          ),
        }
      : { name, fpr: [0, 1], tpr: [0, 1] },
  );
}

async function analyse(
  model: InferenceModel,
  screener: Screener,
  pixels: Float32Array,
  count: number,
): Promise<SetAnalysis> {
  const outputs = await runInBatches(model, pixels, count, screener.extras);
  const defenses = Object.fromEntries(
    await Promise.all(
      BASELINE_DEFENSES.map(
        async (name) => [name, await probabilitiesInBatches(model, pixels, count, makeDefense(name))] as const,
      ),
    ),
  ) as Record<(typeof BASELINE_DEFENSES)[number], Float32Array[]>;
  const scores = outputs.map((o, i) => {
    const f = screener.features(o);
    const fs = featureSqueezing.score({}, { ...f, squeezedProbs: [defenses.bitdepth[i], defenses.median[i]] });
    return [...screener.scores(f), fs];
  });
  const defended: Record<string, Int32Array> = {
    lowpass: Int32Array.from(outputs, (o) => argmax(o.lowPassProbs!)),
  };
  for (const name of BASELINE_DEFENSES) defended[name] = Int32Array.from(defenses[name], (p) => argmax(p));
  return { outputs, predicted: Int32Array.from(outputs, (o) => argmax(o.probs)), scores, defended };
}

const accuracy = (predicted: Int32Array, labels: Int32Array) =>
  predicted.reduce((n, p, i) => n + (p === labels[i] ? 1 : 0), 0) / Math.max(labels.length, 1);

function randomTargets(labels: Int32Array, numClasses: number, seed: number): Int32Array {
  const random = mulberry32(seed);
  // Uniform over the other classes: shift the true class by 1..K−1.
  return labels.map((y) => (y + 1 + Math.floor(random() * (numClasses - 1))) % numClasses);
}

/**
 * One guide per image for feature matching: a clean image of the image's guide class that the model
 * classifies right, drawn seeded (the image itself never, as its class differs).
 */
function guideImages(
  images: { pixels: Float32Array; labels: Int32Array; count: number },
  predicted: Int32Array,
  guideClasses: Int32Array,
  seed: number,
  size: number,
): Float32Array {
  const byClass = new Map<number, number[]>();
  images.labels.forEach((y, i) => {
    if (predicted[i] !== y) return;
    const pool = byClass.get(y);
    if (pool) pool.push(i);
    else byClass.set(y, [i]);
  });
  const random = mulberry32(seed);
  const out = new Float32Array(images.count * size);
  for (let i = 0; i < images.count; i++) {
    const pool = byClass.get(guideClasses[i]) ?? [];
    // A class the model got wholly wrong here: the image is its own guide (no pull; the row counts it unmoved).
    const g = pool.length ? pool[Math.floor(random() * pool.length)] : i;
    out.set(images.pixels.subarray(g * size, (g + 1) * size), i * size);
  }
  return out;
}

function attackTarget(spec: AttackSpec, model: InferenceModel, screener: Screener): AttackTarget {
  if (spec.adaptive === 'lowpass') return lowPassTarget(model, screener.calibration.lowPass);
  if (spec.adaptive === 'detectors') return detectorAwareTarget(model, screener);
  if (spec.adaptive === 'verdict') return detectorAwareTarget(model, screener, undefined, 'verdict');
  return modelTarget(model);
}

function norms(clean: Float32Array, adv: Float32Array, size: number, indices: number[]): { linf: number; l2: number } {
  let linf = 0;
  let l2 = 0;
  for (const i of indices) {
    let m = 0;
    let s = 0;
    for (let j = i * size; j < (i + 1) * size; j++) {
      const d = Math.abs(adv[j] - clean[j]);
      m = Math.max(m, d);
      s += d * d;
    }
    linf += m;
    l2 += Math.sqrt(s);
  }
  const n = Math.max(indices.length, 1);
  return { linf: linf / n, l2: l2 / n };
}

/**
 * The adversarial set of a row: the images at `indices` attacked, the others left clean (a row
 * towards one class does not attack that class's own images).
 */
async function attackSubset(
  spec: AttackSpec,
  model: InferenceModel,
  screener: Screener,
  images: { pixels: Float32Array; labels: Int32Array; count: number },
  indices: readonly number[],
  targets: Int32Array | undefined,
  options: EvaluateOptions,
  extra: { guides?: Float32Array; trace?: (step: number, meanLoss: number, images: number) => void } = {},
): Promise<Float32Array> {
  const size = model.imageSize;
  const whole = indices.length === images.count;
  const pick = (src: Float32Array) => {
    const out = new Float32Array(indices.length * size);
    indices.forEach((i, k) => out.set(src.subarray(i * size, (i + 1) * size), k * size));
    return out;
  };
  const adv = await attackInBatches(
    getAttack(spec.method),
    attackTarget(spec, model, screener),
    whole ? images.pixels : pick(images.pixels),
    whole ? images.labels : Int32Array.from(indices, (i) => images.labels[i]),
    model.inputShape,
    {
      epsilon: spec.epsilon,
      steps: spec.steps,
      targets: targets && !whole ? Int32Array.from(indices, (i) => targets[i]) : targets,
      guides: extra.guides && !whole ? pick(extra.guides) : extra.guides,
      confidence: spec.confidence,
      trace: extra.trace,
      seed: options.seed,
      // Through every detector, a 224×224 image's backward pass also keeps its spectra and their
      // inverse: 8 at once ran out of wasm's 4 GiB heap ("memory access out of bounds"); 2 fit.
      batchSize: (spec.adaptive === 'detectors' || spec.adaptive === 'verdict') && size > 32 * 32 * 3 ? 2 : undefined,
    },
    options.onProgress && ((done) => options.onProgress!(done, indices.length)),
  );
  if (whole) return adv;
  const out = images.pixels.slice();
  indices.forEach((i, k) => out.set(adv.subarray(k * size, (k + 1) * size), i * size));
  return out;
}

export interface EvaluateOptions {
  readonly attacks: readonly AttackSpec[];
  readonly seed: number;
  readonly onStage?: (stage: string) => void;
  readonly onProgress?: (done: number, total: number) => void;
}

export async function evaluate(
  model: InferenceModel,
  screener: Screener,
  images: { pixels: Float32Array; labels: Int32Array; count: number },
  options: EvaluateOptions,
): Promise<{ result: EvaluationResult; artifacts: EvaluationArtifacts }> {
  const started = Date.now();
  const size = model.imageSize;
  const numClasses = model.metadata.labels.length;
  const { labels, count } = images;
  const names = [...screener.detectorNames, FEATURE_SQUEEZING];
  const calibrated = screener.thresholds();

  options.onStage?.(`clean images (${count})`);
  const clean = await analyse(model, screener, images.pixels, count);
  const cleanAccuracy = accuracy(clean.predicted, labels);
  const all = Array.from(labels.keys());
  const correct = all.filter((i) => clean.predicted[i] === labels[i]);
  const cleanScore = (k: number) => clean.scores.map((s) => s[k]);
  const cleanFalsePositiveRate = Object.fromEntries(
    screener.detectorNames.map((name, k) => [name, cleanScore(k).filter((s) => s > calibrated[name]).length / count]),
  );
  const defensesClean = Object.entries(clean.defended).map(([name, p]) => ({
    name,
    accuracy: accuracy(p, labels),
    cleanAccuracy: accuracy(p, labels),
  }));
  const cleanLogSpectra = await logPowerSpectra(images.pixels, count, model.inputShape);
  const spectrumWidth = model.inputShape[0] * model.inputShape[1];
  const cleanSpectra = classMeans(cleanLogSpectra, spectrumWidth, labels, numClasses);
  const expectations = screener.calibration.detectors.activationDistance as ActivationDistanceState;

  const artifacts: EvaluationArtifacts = {
    roc: {},
    cleanSpectra,
    adversarialSpectra: {},
    perturbationSpectra: {},
    lossCurves: {},
    scores: { names, clean: clean.scores, rows: {} },
  };
  const rows: AttackRow[] = [];
  for (const spec of options.attacks) {
    options.onStage?.(`${spec.name}${spec.adaptive ? ` (adaptive to ${spec.adaptive})` : ''}`);
    const t0 = Date.now();
    const fixed = spec.targetClass;
    const targets = spec.targeted
      ? randomTargets(labels, numClasses, options.seed + 17)
      : fixed !== undefined
        ? new Int32Array(count).fill(fixed)
        : undefined;
    // A row towards one class: only the images of the other classes are attacked and counted.
    const attacked = fixed === undefined ? all : all.filter((i) => labels[i] !== fixed);
    const eligible = fixed === undefined ? correct : correct.filter((i) => labels[i] !== fixed);
    const guides = spec.guided
      ? guideImages(
          images,
          clean.predicted,
          randomTargets(labels, numClasses, options.seed + 29),
          options.seed + 31,
          size,
        )
      : undefined;
    // Mean loss per step over the row's images (batches weighted by their images): the convergence plot.
    const curve = { sum: [] as number[], images: [] as number[] };
    const trace = (step: number, meanLoss: number, n: number) => {
      curve.sum[step] = (curve.sum[step] ?? 0) + meanLoss * n;
      curve.images[step] = (curve.images[step] ?? 0) + n;
    };
    const advPixels = await attackSubset(spec, model, screener, images, attacked, targets, options, { guides, trace });
    if (curve.sum.length > 0) artifacts.lossCurves[spec.name] = curve.sum.map((s, k) => s / curve.images[k]);
    const adv = await analyse(model, screener, advPixels, count);
    const combinedIndex = screener.detectorNames.indexOf(COMBINED);
    const succeeded = eligible.filter((i) =>
      targets ? adv.predicted[i] === targets[i] : adv.predicted[i] !== labels[i],
    );
    const misclassified = eligible.filter((i) => adv.predicted[i] !== labels[i]);
    const evaded = misclassified.filter((i) => !(adv.scores[i][combinedIndex] > calibrated.combined));
    const positives = misclassified.map((i) => adv.scores[i]);
    artifacts.scores!.rows[spec.name] = {
      positives,
      ...(curve.sum.length > 0 ? { loss: curve } : {}),
    };
    const detectors = detectorRows(names, positives, clean.scores, calibrated);
    artifacts.roc[spec.name] = rocCurves(names, positives, clean.scores);
    const defenses = Object.entries(adv.defended).map(([name, p]) => ({
      name,
      accuracy: accuracy(p, labels),
      cleanAccuracy: defensesClean.find((d) => d.name === name)!.cleanAccuracy,
    }));
    // Research claims, on the misclassified images: origin = true class, target = adversarial prediction.
    const origin = misclassified.map((i) => labels[i]);
    const target = misclassified.map((i) => adv.predicted[i]);
    const perturbation = new Float32Array(misclassified.length * size);
    const advSubset = new Float32Array(misclassified.length * size);
    misclassified.forEach((i, k) => {
      for (let j = 0; j < size; j++) {
        perturbation[k * size + j] = advPixels[i * size + j] - images.pixels[i * size + j];
        advSubset[k * size + j] = advPixels[i * size + j];
      }
    });
    const perturbationLog = await logPowerSpectra(perturbation, misclassified.length, model.inputShape);
    artifacts.perturbationSpectra[spec.name] = classMeans(perturbationLog, spectrumWidth, target, numClasses);
    artifacts.adversarialSpectra[spec.name] = classMeans(
      await logPowerSpectra(advSubset, misclassified.length, model.inputShape),
      spectrumWidth,
      target,
      numClasses,
    );
    const ps = misclassified.map((i) =>
      promotionSuppression(clean.outputs[i].logits, adv.outputs[i].logits, labels[i], adv.predicted[i]),
    );
    const typeShare = (t: PromotionSuppressionType) => ps.filter((p) => p.type === t).length / Math.max(ps.length, 1);
    const n = norms(images.pixels, advPixels, size, misclassified);
    const base = Math.max(eligible.length, 1);
    rows.push({
      name: spec.name,
      method: spec.method,
      epsilon: Number.isFinite(spec.epsilon) ? spec.epsilon : null,
      steps: spec.steps ?? null,
      targeted: !!spec.targeted || fixed !== undefined,
      targetClass: fixed ?? null,
      adaptive: !!spec.adaptive,
      adaptiveTo: spec.adaptive ?? null,
      successRate: (spec.adaptive ? evaded.length : succeeded.length) / base,
      misclassificationRate: misclassified.length / base,
      evasionRate: evaded.length / base,
      successful: succeeded.length,
      eligible: eligible.length,
      misclassified: misclassified.length,
      evaded: evaded.length,
      meanLinf: n.linf,
      meanL2: n.l2,
      detectors,
      defenses,
      spectrum: spectrumClaim(perturbationLog, spectrumWidth, origin, target, cleanSpectra),
      trajectory: trajectoryClaim(
        expectations,
        misclassified.map((i) => clean.outputs[i].activations),
        misclassified.map((i) => adv.outputs[i].activations),
        origin,
        target,
      ),
      promotionSuppression: {
        suppression: typeShare('suppression'),
        promotion: typeShare('promotion'),
        balanced: typeShare('balanced'),
        meanDrop: ps.reduce((a, p) => a + p.drop, 0) / Math.max(ps.length, 1),
        meanRise: ps.reduce((a, p) => a + p.rise, 0) / Math.max(ps.length, 1),
      },
      seconds: (Date.now() - t0) / 1000,
    });
  }
  return {
    result: {
      images: count,
      seed: options.seed,
      cleanAccuracy,
      cleanFalsePositiveRate,
      defensesClean,
      attacks: rows,
      seconds: (Date.now() - started) / 1000,
    },
    artifacts,
  };
}
