/**
 * Calibration: fits everything screening needs from labelled clean images of the *training* split,
 * and from attacks on some of them:
 *  - the images are split (seeded) into a fit set, a clean hold-out set and an attack set;
 *  - the low-pass defense's radius and mask: among the candidates that cost at most `maxAccuracyCost`
 *    of clean hold-out accuracy, the one that recovers most accuracy on the calibration attacks;
 *  - each detector is fitted on the fit set (the high-frequency sieve also picks its cut-off there,
 *    against the calibration attacks); a class with fewer than MIN_CLASS_IMAGES fit images (a folder
 *    that left it out) uses the statistics of all classes pooled, and is listed in data.pooledClasses;
 *  - the combined regression on adversarial scores and the first half of the hold-out set;
 *  - thresholds: clean scores of every detector, kept sorted, from which any false-positive rate's
 *    split-conformal threshold is read (./conformal.ts): on `thresholdImages`, clean images the model
 *    was not trained on, when given (./thresholds.ts; for Fashion-MNIST, a part of the test split
 *    that evaluate then leaves out); else on the second half of the hold-out, where calibration
 *    fitted nothing but the model was trained (its rates then run high on new images).
 */
import { attackInBatches } from '../attacks/runAttack';
import { getAttack } from '../attacks/registry';
import { modelTarget } from '../attacks/target';
import { combinedScore, CombinedState, fitCombined } from '../detectors/combined';
import { argmax, FitData, ImageFeatures, MIN_CLASS_IMAGES, toFeatures } from '../detectors/detector';
import { HF_CUTOFF_CANDIDATES } from '../detectors/highFrequencyEnergy';
import { CHANNEL_MAHALANOBIS } from '../detectors/channelMahalanobis';
import { COMBINED, screeningDetectors } from '../detectors/registry';
import type { ActivationDistanceState } from '../detectors/activationDistance';
import { classExpectations } from '../detectors/classExpectations';
import type { BatchExtras, ImageOutput, InferenceModel } from '../engine/model';
import type { LowPassKind } from '../engine/spectra';
import { auroc, tprAtFpr } from '../evaluation/metrics';
import { probabilitiesInBatches, runInBatches } from '../screening/inProcess';
import { makeDefense } from '../defenses/registry';
import { mulberry32, permutation } from '../train/random';
import { Calibration, CALIBRATION_SCHEMA_VERSION, LowPassChoice } from './calibrationFile';
import { classSpectra } from './classSpectra';
import { pickImages } from '../data/labelledImages';
import { readThresholds, sortedAscending, ThresholdImages } from './thresholds';
import { fitUnion, UnionChoice } from './verdictUnion';
import { hardenVerdict, HardeningOptions, HardeningRound } from './hardening';

export interface LabelledImages {
  /** count × H × W × C values in [0, 1]. */
  readonly pixels: Float32Array;
  readonly labels: Int32Array;
  readonly count: number;
  /** Where they came from, for the record (e.g. "fashion-mnist train"). */
  readonly source: string;
}

export interface CalibrateOptions {
  /** Images the detectors are fitted on. */
  readonly fit: number;
  /** Clean images thresholds are read from (not fitted on). */
  readonly holdout: number;
  /** Images attacked for the defense's radius, the cut-off and the combined regression. */
  readonly attacked: number;
  readonly seed: number;
  readonly targetFpr: number;
  /** Largest clean-accuracy drop the low-pass defense may cost (0.01 = 1 point). */
  readonly maxAccuracyCost: number;
  readonly command?: string;
  readonly onStage?: (stage: string) => void;
  /** The current stage's progress (images, candidates or detectors done of total). */
  readonly onProgress?: (done: number, total: number) => void;
  /**
   * Clean images the model was not trained on, to read the thresholds on (./thresholds.ts); without
   * them, the second half of the hold-out (the same images the detectors' data came from) is used.
   */
  readonly thresholdImages?: ThresholdImages;
  /** Told once the split is made, before the long stages. */
  readonly onClasses?: (report: ClassReport) => void;
  /** Also fit the optional Deep k-NN detector (src/detectors/deepKnn.ts); it then enters the combined verdict. */
  readonly deepKnn?: boolean;
  /** Also fit the optional boundary-margin detector (src/detectors/boundaryMargin.ts); it then enters the combined verdict. */
  readonly boundaryMargin?: boolean;
  /**
   * Also fit a channel-means Mahalanobis detector per conv layer (src/detectors/channelMahalanobis.ts);
   * they then enter the combined verdict as inputs of their own.
   */
  readonly channelMahalanobis?: boolean;
  /**
   * How the combined verdict weighs its adversarial rows: 'image' (default), each successful attack
   * image alike, so an attack that succeeds on more images weighs more (unbounded CW succeeds on
   * nearly all, an ε-bounded attack on a robust model on few); 'attack', each calibration attack
   * (CALIBRATION_ATTACKS) alike, its images sharing its weight; the "either one" terms are then
   * chosen by the attack they flag least (fitUnion's `attackOfRow`).
   */
  readonly attackWeights?: AttackWeights;
  /** false: the combined verdict is the regression alone, without the "either one" term of ./verdictUnion.ts. */
  readonly union?: boolean;
  /** Rounds of hardening the verdict against end-to-end attacks aimed at it (./hardening.ts); none without. */
  readonly hardening?: HardeningOptions;
  /**
   * Clean training images for hardening to attack, beside `images` (so the split does not depend on
   * hardening); without them, the images the split leaves over, else the attack set's.
   */
  readonly hardeningImages?: { readonly pixels: Float32Array; readonly labels: Int32Array; readonly count: number };
}

export const ATTACK_WEIGHTS = ['image', 'attack'] as const;
export type AttackWeights = (typeof ATTACK_WEIGHTS)[number];

/**
 * The adversarial rows' weights in the verdict's fit: all 1 ('image'), or 1 / (the successful images
 * of its attack) ('attack'), scaled so that they sum to the number of rows either way.
 */
export function attackRowWeights(attackOfRow: ArrayLike<number>, mode: AttackWeights): number[] {
  const n = attackOfRow.length;
  if (mode === 'image') return new Array<number>(n).fill(1);
  const counts = new Map<number, number>();
  for (let i = 0; i < n; i++) counts.set(attackOfRow[i], (counts.get(attackOfRow[i]) ?? 0) + 1);
  return Array.from(attackOfRow, (a) => n / counts.size / counts.get(a)!);
}

/** Images per class of the fit and hold-out sets, and the classes that get the pooled fallback (MIN_CLASS_IMAGES). */
export interface ClassReport {
  readonly fit: Readonly<Record<string, number>>;
  readonly holdout: Readonly<Record<string, number>>;
  readonly pooled: readonly string[];
}

export const CALIBRATE_DEFAULTS = {
  fit: 8000,
  holdout: 3000,
  attacked: 1200,
  seed: 1,
  targetFpr: 0.05,
  maxAccuracyCost: 0.01,
} as const;

export const LOW_PASS_CANDIDATES: ReadonlyArray<{ radius: number; kind: LowPassKind }> = [
  ...[0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6].map((radius) => ({ radius, kind: 'ideal' as const })),
  ...[0.15, 0.2, 0.25, 0.3, 0.35, 0.4].map((radius) => ({ radius, kind: 'gaussian' as const })),
];

/** Hidden units of the combined verdict beside its linear part (see detectors/combined.ts). */
export const COMBINER_HIDDEN_UNITS = 8;

/** The calibration attacks: a mix of budgets and methods, so the fitted choices do not suit one attack only. */
const CALIBRATION_ATTACKS = [
  { method: 'fgsm', epsilon: 0.05 },
  { method: 'fgsm', epsilon: 0.1 },
  { method: 'fgsm', epsilon: 0.2 },
  { method: 'pgd', epsilon: 0.05, steps: 20 },
  { method: 'pgd', epsilon: 0.1, steps: 20 },
  { method: 'cw', epsilon: Infinity, steps: 50 },
] as const;

const accuracyOf = (probs: Float32Array[], labels: ArrayLike<number>) =>
  probs.reduce((n, p, i) => n + (argmax(p) === labels[i] ? 1 : 0), 0) / Math.max(probs.length, 1);

/** What calibration's summary records of the union terms' choice (`summary.union`). */
export type UnionSummary = ReturnType<typeof unionSummary>;

function unionSummary(u: UnionChoice) {
  return {
    terms: u.terms,
    regressionTprAtTargetFpr: u.regressionTpr,
    tprAtTargetFpr: u.tpr,
    candidates: u.candidates,
    criterion: u.criterion,
  };
}

/** Fewest images each of the fit and hold-out sets needs; the hold-out set takes at most HOLDOUT_SHARE of them. */
export const MIN_SPLIT_IMAGES = 20;
export const HOLDOUT_SHARE = 0.3;
/** Fewest successful calibration attacks the combined verdict and the cut-off are fitted on. */
export const MIN_ADVERSARIAL_IMAGES = 10;

/** Fewest images for which the split gives both sets MIN_SPLIT_IMAGES (67 with the share 0.3). */
export function minimumCalibrationImages(): number {
  let n = MIN_SPLIT_IMAGES * 2;
  while (Math.floor(n * HOLDOUT_SHARE) < MIN_SPLIT_IMAGES) n++;
  return n;
}

/** Splits the images: fit, hold-out and attack sets (the attack set reuses fit images when there are too few). */
function split(images: LabelledImages, options: CalibrateOptions) {
  for (const [flag, value] of [
    ['--fit', options.fit],
    ['--holdout', options.holdout],
  ] as const) {
    if (value < MIN_SPLIT_IMAGES) throw new RangeError(`${flag} must be at least ${MIN_SPLIT_IMAGES}, got ${value}`);
  }
  if (!(options.attacked >= MIN_ADVERSARIAL_IMAGES)) {
    throw new RangeError(`--attacked must be at least ${MIN_ADVERSARIAL_IMAGES}, got ${options.attacked}`);
  }
  const order = permutation(images.count, mulberry32(options.seed));
  const holdout = Math.min(options.holdout, Math.floor(images.count * HOLDOUT_SHARE));
  const fit = Math.min(options.fit, images.count - holdout);
  const rest = images.count - holdout - fit;
  const attackFrom = rest >= options.attacked ? holdout + fit : holdout;
  const attacked = Math.min(options.attacked, images.count - attackFrom);
  if (fit < MIN_SPLIT_IMAGES || holdout < MIN_SPLIT_IMAGES) {
    throw new RangeError(
      `calibration needs at least ${minimumCalibrationImages()} images, got ${images.count}: the hold-out set ` +
        `(--holdout) takes at most ${HOLDOUT_SHARE * 100} % of them and needs ${MIN_SPLIT_IMAGES}, the fit set ` +
        `(--fit) the rest and needs ${MIN_SPLIT_IMAGES}; here they would get ${holdout} and ${fit}`,
    );
  }
  // Hardening attacks images no other set took; with too few of those (a small folder), the attack set's too.
  const beyond = order.subarray(Math.max(holdout + fit, attackFrom + attacked));
  const hardeningNeeds = options.hardening ? options.hardening.rounds * options.hardening.images : 0;
  return {
    holdout: order.subarray(0, holdout),
    fit: order.subarray(holdout, holdout + fit),
    attacked: order.subarray(attackFrom, attackFrom + attacked),
    hardening:
      beyond.length >= hardeningNeeds
        ? beyond.subarray(0, hardeningNeeds)
        : Uint32Array.from([...beyond, ...order.subarray(attackFrom, attackFrom + attacked)]),
  };
}

async function generateAttacks(
  model: InferenceModel,
  images: { pixels: Float32Array; labels: Int32Array; count: number },
  seed: number,
  onProgress?: (done: number, total: number) => void,
): Promise<{ pixels: Float32Array; labels: Int32Array; count: number; attacks: string[]; attackOf: Uint8Array }> {
  const size = model.imageSize;
  const out = new Float32Array(images.count * size);
  const attackOf = new Uint8Array(images.count);
  const share = Math.ceil(images.count / CALIBRATION_ATTACKS.length);
  const attacks: string[] = [];
  for (const [k, spec] of CALIBRATION_ATTACKS.entries()) {
    const start = k * share;
    const end = Math.min(images.count, start + share);
    if (start >= end) break;
    const adv = await attackInBatches(
      getAttack(spec.method),
      modelTarget(model),
      images.pixels.subarray(start * size, end * size),
      images.labels.subarray(start, end),
      model.inputShape,
      { epsilon: spec.epsilon, steps: 'steps' in spec ? spec.steps : undefined, seed: seed + start },
      (done) => onProgress?.(start + done, images.count),
    );
    out.set(adv, start * size);
    attackOf.fill(k, start, end);
    attacks.push(
      `${spec.method} ${Number.isFinite(spec.epsilon) ? `ε=${spec.epsilon}` : 'unbounded ε'}${'steps' in spec ? ` ${spec.steps} steps` : ''} ×${end - start}`,
    );
  }
  return { pixels: out, labels: images.labels, count: images.count, attacks, attackOf };
}

async function chooseLowPass(
  model: InferenceModel,
  clean: { pixels: Float32Array; labels: Int32Array; count: number },
  adversarial: { pixels: Float32Array; labels: Int32Array; count: number },
  maxCost: number,
  onProgress?: (done: number, total: number) => void,
): Promise<LowPassChoice> {
  const base = accuracyOf(await probabilitiesInBatches(model, clean.pixels, clean.count), clean.labels);
  const candidates: Array<LowPassChoice['candidates'][number]> = [];
  for (const [k, c] of LOW_PASS_CANDIDATES.entries()) {
    // Only the filtered images' probabilities: the candidates need no activations or extras.
    const filter = makeDefense('lowpass', c);
    candidates.push({
      ...c,
      filteredAccuracy: accuracyOf(
        await probabilitiesInBatches(model, clean.pixels, clean.count, filter),
        clean.labels,
      ),
      adversarialAccuracy: accuracyOf(
        await probabilitiesInBatches(model, adversarial.pixels, adversarial.count, filter),
        adversarial.labels,
      ),
    });
    onProgress?.(k + 1, LOW_PASS_CANDIDATES.length);
  }
  const affordable = candidates.filter((c) => base - c.filteredAccuracy <= maxCost);
  // When none is affordable, the cheapest filter is the least harmful.
  const pool = affordable.length
    ? affordable
    : [candidates.reduce((a, b) => (b.filteredAccuracy > a.filteredAccuracy ? b : a))];
  const best = pool.reduce((a, b) => (b.adversarialAccuracy > a.adversarialAccuracy ? b : a));
  return {
    radius: best.radius,
    kind: best.kind,
    cleanAccuracy: base,
    filteredAccuracy: best.filteredAccuracy,
    adversarialAccuracy: best.adversarialAccuracy,
    maxCost,
    candidates,
  };
}

/** Images per class, by label, in label order. */
export function classCounts(labels: ArrayLike<number>, names: readonly string[]): Record<string, number> {
  const counts = new Array<number>(names.length).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return Object.fromEntries(names.map((name, c) => [name, counts[c]]));
}

/**
 * Seconds per stage, for the record and for sizing a longer run: `start(key, text)` ends the
 * stage before (if any) and tells options.onStage; `end()` ends the last.
 */
function stageClock(onStage?: (stage: string) => void) {
  const seconds: Record<string, number> = {};
  let current: { key: string; since: number } | undefined;
  const end = () => {
    if (current) seconds[current.key] = (Date.now() - current.since) / 1000;
    current = undefined;
  };
  return {
    seconds,
    end,
    start: (key: string, text: string) => {
      end();
      current = { key, since: Date.now() };
      onStage?.(text);
    },
  };
}

export async function calibrate(
  model: InferenceModel,
  images: LabelledImages,
  options: CalibrateOptions,
  modelSha256: string,
): Promise<Calibration> {
  const started = Date.now();
  const size = model.imageSize;
  const numClasses = model.metadata.labels.length;
  const parts = split(images, options);
  const fitSet = pickImages(images, parts.fit, size);
  const holdoutSet = pickImages(images, parts.holdout, size);
  const attackSet = pickImages(images, parts.attacked, size);
  const classImages = classCounts(fitSet.labels, model.metadata.labels);
  const holdoutClassImages = classCounts(holdoutSet.labels, model.metadata.labels);
  const pooledClasses = Object.entries(classImages).flatMap(([label, n]) => (n < MIN_CLASS_IMAGES ? [label] : []));
  options.onClasses?.({ fit: classImages, holdout: holdoutClassImages, pooled: pooledClasses });
  const clock = stageClock(options.onStage);

  clock.start('attacks', `attacking ${attackSet.count} training images`);
  const generated = await generateAttacks(model, attackSet, options.seed, options.onProgress);
  // Only attacks that changed the prediction are adversarial examples.
  clock.start('attackCheck', `classifying the ${generated.count} attacked images`);
  const advOutPlain = await runInBatches(model, generated.pixels, generated.count, {}, (done) =>
    options.onProgress?.(done, generated.count),
  );
  const successful = advOutPlain.flatMap((o, i) => (argmax(o.probs) !== generated.labels[i] ? [i] : []));
  const adversarialSet = pickImages(generated, successful, size);
  if (adversarialSet.count < MIN_ADVERSARIAL_IMAGES) {
    throw new Error(
      `only ${adversarialSet.count} of ${generated.count} calibration attacks changed the prediction; at least ` +
        `${MIN_ADVERSARIAL_IMAGES} are needed to fit on: attack more images (--attacked, now ${options.attacked}; ` +
        `it takes images beyond --fit and --holdout, or fit images when there are too few)`,
    );
  }

  clock.start('lowPass', `choosing the low-pass radius among ${LOW_PASS_CANDIDATES.length} candidates`);
  const lowPass = await chooseLowPass(model, holdoutSet, adversarialSet, options.maxAccuracyCost, options.onProgress);

  const featureImages = fitSet.count + holdoutSet.count + adversarialSet.count;
  clock.start(
    'features',
    `forward passes with activations and spectra of ${featureImages} images (fit, hold-out, adversarial)`,
  );
  const extras: BatchExtras = {
    hfCutoffs: HF_CUTOFF_CANDIDATES,
    lowPass: { radius: lowPass.radius, kind: lowPass.kind },
  };
  let featuresDone = 0;
  const features = async (set: { pixels: Float32Array; count: number }) => {
    const before = featuresDone;
    const outputs = await runInBatches(model, set.pixels, set.count, extras, (done) =>
      options.onProgress?.((featuresDone = before + done), featureImages),
    );
    return outputs.map((o: ImageOutput) => toFeatures(o, HF_CUTOFF_CANDIDATES));
  };
  const fitFeatures = await features(fitSet);
  const holdoutFeatures = await features(holdoutSet);
  const advFeatures = await features(adversarialSet);

  clock.start('classSpectra', `mean spectra of the ${fitSet.count} fit images' classes`);
  const spectra = await classSpectra(fitSet.pixels, fitSet.labels, fitSet.count, model.inputShape, numClasses);

  const hiddenLayer = model.activationLayers.filter((l) => l !== model.metadata.logitsLayer).slice(-1)[0];
  const detectors = screeningDetectors(
    hiddenLayer,
    [
      ...(options.deepKnn ? ['deepKnn'] : []),
      ...(options.boundaryMargin ? ['boundaryMargin'] : []),
      ...(options.channelMahalanobis ? [CHANNEL_MAHALANOBIS] : []),
    ],
    options.channelMahalanobis ? model.spatialLayers : [],
  );
  clock.start('fit', `fitting the ${detectors.length} detectors`);
  const fitData: FitData = { clean: fitFeatures, labels: fitSet.labels, adversarial: advFeatures, numClasses };
  const states: Record<string, unknown> = {};
  for (const [k, d] of detectors.entries()) {
    states[d.name] = d.fit(fitData);
    options.onProgress?.(k + 1, detectors.length);
  }
  clock.start('scores', 'scoring the hold-out and adversarial images');
  const scoresOf = (fs: ImageFeatures[]) => fs.map((f) => detectors.map((d) => d.score(states[d.name], f)));
  // The regression's clean side and the thresholds come from disjoint halves of the hold-out set:
  // on fit-set images the density estimate would score its own kernel centres, unrealistically clean.
  const half = Math.floor(holdoutFeatures.length / 2);
  const combinerScores = scoresOf(holdoutFeatures.slice(0, half));
  const advScores = scoresOf(advFeatures);
  const holdoutScores = scoresOf(holdoutFeatures.slice(half));
  const names = detectors.map((d) => d.name);
  const attackOfRow = successful.map((i) => generated.attackOf[i]);
  // attackOfRow: the union's criterion is the worst attack's share (see fitUnion), on the calibration
  // attacks only: a hardening refit adds rows of its own and keeps the pooled criterion.
  const fitVerdict = (adversarial: readonly number[][], weights?: readonly number[], attacks?: ArrayLike<number>) => {
    const regression = fitCombined(names, combinerScores, adversarial, {
      hidden: COMBINER_HIDDEN_UNITS,
      seed: options.seed,
      adversarialWeights: weights,
    });
    const union =
      options.union === false
        ? null
        : fitUnion(regression, holdoutScores, adversarial, options.targetFpr, weights, attacks);
    return { state: union?.state ?? regression, union };
  };
  const byAttack = options.attackWeights === 'attack';
  const attackWeights = attackRowWeights(attackOfRow, byAttack ? 'attack' : 'image');
  let verdict = byAttack ? fitVerdict(advScores, attackWeights, attackOfRow) : fitVerdict(advScores);
  const columns = Object.fromEntries(names.map((name, k) => [name, sortedAscending(holdoutScores.map((r) => r[k]))]));
  const combinedHoldout = (state: CombinedState) => sortedAscending(holdoutScores.map((r) => combinedScore(state, r)));
  const assemble = (combined: CombinedState, summary: Record<string, unknown>): Calibration => ({
    schemaVersion: CALIBRATION_SCHEMA_VERSION,
    model: { id: model.metadata.id, sha256: modelSha256 },
    createdAt: new Date().toISOString(),
    data: {
      source: images.source,
      fit: fitSet.count,
      holdout: holdoutSet.count,
      thresholdImages: holdoutSet.count - half,
      adversarial: adversarialSet.count,
      attacks: generated.attacks,
      classImages,
      holdoutClassImages,
      pooledClasses,
    },
    hiddenLayer,
    defaultTargetFpr: options.targetFpr,
    lowPass,
    detectors: states,
    combined,
    holdoutScores: { ...columns, [COMBINED]: combinedHoldout(combined) },
    classSpectra: spectra,
    summary,
  });

  let hardening: HardeningRound[] | undefined;
  if (options.hardening) {
    const h = options.hardening;
    const pool = options.hardeningImages ?? pickImages(images, parts.hardening, size);
    clock.start(
      'hardening',
      `hardening the verdict: ${h.rounds} rounds of end-to-end attacks, ${h.images} images each`,
    );
    const hardened = await hardenVerdict({
      model,
      images: pool,
      options: h,
      seed: options.seed,
      targetFpr: options.targetFpr,
      combined: verdict.state,
      adversarial: advScores,
      adversarialWeights: attackWeights,
      calibrationWith: (combined) => assemble(combined, {}),
      scoresOf: async (pixels, count) =>
        scoresOf((await runInBatches(model, pixels, count, extras)).map((o) => toFeatures(o, HF_CUTOFF_CANDIDATES))),
      refit: (rows, weights) => (verdict = fitVerdict(rows, weights)).state,
      clean: holdoutScores,
      onRound: (round, stage) => options.onStage?.(`hardening round ${round + 1} of ${h.rounds}: ${stage}`),
      onProgress: options.onProgress,
    });
    hardening = hardened.rounds;
  }
  const { union, state: combined } = verdict;

  const summary: Record<string, unknown> = {};
  [...names, COMBINED].forEach((name, k) => {
    const score = (row: number[]) => (k < names.length ? row[k] : combinedScore(combined, row));
    const clean = holdoutScores.map(score);
    const adv = advScores.map(score);
    const nan = [...clean, ...adv].filter(Number.isNaN).length;
    if (nan > 0) throw new Error(`${name} scored ${nan} calibration images NaN: its fitted statistics are not usable`);
    summary[name] = {
      aurocOnCalibrationAttacks: auroc(adv, clean),
      tprAtTargetFpr: tprAtFpr(adv, clean, options.targetFpr),
    };
  });
  clock.end();
  const fitted = assemble(combined, {
    ...summary,
    ...(union ? { union: unionSummary(union) } : {}),
    ...(hardening ? { hardening: { settings: options.hardening, rounds: hardening } } : {}),
  });
  let calibration = fitted;
  if (options.thresholdImages) {
    clock.start('thresholds', `reading the thresholds on ${options.thresholdImages.count} unseen clean images`);
    calibration = await readThresholds(model, fitted, options.thresholdImages, options.onProgress);
    clock.end();
  }
  return {
    ...calibration,
    summary: {
      ...calibration.summary,
      command: options.command,
      seconds: (Date.now() - started) / 1000,
      stageSeconds: clock.seconds,
    },
  };
}

/**
 * Adds class spectra to a calibration made before they were recorded, changing nothing else in it:
 * `images` and `options` must be those it was made with, so that the split gives the same fit set —
 * checked by recomputing the class expectations the activation-distance detector stored at its
 * last layer from that set (a different set moves them far beyond float rounding).
 */
export async function addClassSpectra(
  model: InferenceModel,
  images: LabelledImages,
  options: Pick<CalibrateOptions, 'fit' | 'holdout' | 'attacked' | 'seed'>,
  calibration: Calibration,
): Promise<{ calibration: Calibration; expectationError: number }> {
  const size = model.imageSize;
  const parts = split(images, options as CalibrateOptions);
  const fitSet = pickImages(images, parts.fit, size);
  const { data } = calibration;
  if (images.source !== data.source || fitSet.count !== data.fit || parts.holdout.length !== data.holdout) {
    throw new Error(
      `the calibration was made on ${data.fit} fit and ${data.holdout} hold-out images of '${data.source}', these options give ` +
        `${fitSet.count} and ${parts.holdout.length} of '${images.source}': pass the options it was made with (${String(calibration.summary.command)})`,
    );
  }
  const state = calibration.detectors.activationDistance as ActivationDistanceState;
  const layer = state.layers[state.layers.length - 1];
  const outputs = await runInBatches(model, fitSet.pixels, fitSet.count, {});
  const mu = classExpectations(
    outputs.map((o) => o.activations),
    fitSet.labels,
    [layer],
    model.metadata.labels.length,
  )[layer];
  const stored = state.expectations[layer];
  const expectationError = Math.max(...mu.flatMap((row, c) => row.map((v, j) => Math.abs(v - stored[c][j]))));
  if (!(expectationError <= EXPECTATION_TOLERANCE)) {
    throw new Error(
      `these images and options do not give the calibration's fit set: its class expectations at '${layer}' differ by up to ` +
        `${expectationError.toPrecision(3)} (tolerance ${EXPECTATION_TOLERANCE}); pass the options it was made with (${String(calibration.summary.command)})`,
    );
  }
  const spectra = await classSpectra(
    fitSet.pixels,
    fitSet.labels,
    fitSet.count,
    model.inputShape,
    model.metadata.labels.length,
  );
  return { calibration: { ...calibration, classSpectra: spectra }, expectationError };
}

/** Largest difference of a recomputed class expectation from the stored one that still counts as the same fit set. */
const EXPECTATION_TOLERANCE = 1e-3;
