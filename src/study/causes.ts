/**
 * The causes study (issue 14): the paper "causes of adversarial examples" names model linearity,
 * the one-sum constraint of softmax and the geometry of the categories, and controls each with a
 * technique — L2 normalisation, a replaced loss, reference datasets of known geometry, MLP-PNN and
 * density estimation. This trains (or loads from the cache) each variant on each data set of the
 * plan (./variants.ts) and measures, per model: clean accuracy; FGSM, PGD and CW success over
 * budgets and the confidence of the successful adversarial predictions (./robustness.ts); the
 * geometry of its classes (./geometry.ts); every detector's AUROC (./detection.ts). ./claims.ts
 * then reads the paper's claims against the figures, and ./causesReport.ts writes them out.
 */
import * as os from 'os';
import { DEFAULT_FASHION_MNIST_DIR, FASHION_LABELS, ImageSet, loadFashionMnist } from '../data/fashionMnist';
import { referenceDataset } from '../data/referenceDatasets';
import { argmax } from '../detectors/detector';
import { noneProbabilityOf } from '../engine/layers/pnnHead';
import type { InferenceModel } from '../engine/model';
import { runInBatches } from '../screening/inProcess';
import { judgeClaims } from './claims';
import { detection } from './detection';
import type { CausesResult, CausesSettings, DatasetRecord, RunResult } from './results';
import { geometry } from './geometry';
import { rejection } from './rejection';
import { LabelledPixels, robustness } from './robustness';
import { trainOrLoad } from './studyModels';
import { STUDY_DATASETS, STUDY_VARIANTS, StudyDataset, StudyVariant } from './variants';

export const DEFAULT_CAUSES_SETTINGS: CausesSettings = {
  fashionTrainImages: 4000,
  referenceTrainImages: 2000,
  testImages: 500,
  attackImages: 100,
  epochs: 3,
  batchSize: 64,
  learningRate: 2e-3,
  workers: Math.min(2, os.availableParallelism()),
  model: { conv1Filters: 16, conv2Filters: 32, hiddenUnits: 64, dropout: 0.1 },
  linfBudgets: [0, 0.02, 0.05, 0.1, 0.2],
  l2Budgets: [0, 0.5, 1, 2, 3],
  pgdSteps: 20,
  cwSteps: 30,
  detectionEpsilon: 0.1,
  calibration: { fit: 400, holdout: 150, attacked: 90 },
  seed: 1,
};

/** Tiny everything, one epoch: the whole pipeline in seconds (tests, a smoke run), figures meaningless. */
export const QUICK_CAUSES_SETTINGS: CausesSettings = {
  ...DEFAULT_CAUSES_SETTINGS,
  fashionTrainImages: 400,
  referenceTrainImages: 400,
  testImages: 100,
  attackImages: 40,
  epochs: 1,
  batchSize: 16,
  learningRate: 5e-3,
  workers: 1,
  model: { conv1Filters: 4, conv2Filters: 8, hiddenUnits: 16, dropout: 0 },
  pgdSteps: 4,
  cwSteps: 8,
  calibration: { fit: 60, holdout: 30, attacked: 40 },
};

export interface CausesOptions {
  readonly settings: CausesSettings;
  readonly cacheDir: string;
  readonly dataDir?: string;
  readonly datasets?: readonly StudyDataset[];
  readonly variants?: readonly StudyVariant[];
  readonly onStage?: (stage: string) => void;
}

interface LoadedDataset {
  readonly record: DatasetRecord;
  readonly train: ImageSet;
  readonly test: ImageSet;
  readonly labels: readonly string[];
  /** What the cache key holds of the data (everything the images depend on). */
  readonly key: unknown;
}

function loadDataset(d: StudyDataset, s: CausesSettings, dataDir: string): LoadedDataset {
  if (d.source.kind === 'fashion') {
    const train = loadFashionMnist('train', dataDir, s.fashionTrainImages);
    return {
      record: { id: d.id, title: d.title, kind: 'fashion', trainImages: train.count },
      train,
      test: loadFashionMnist('test', dataDir, s.testImages),
      labels: FASHION_LABELS,
      key: { fashion: s.fashionTrainImages },
    };
  }
  const set = referenceDataset({
    ...d.source.geometry,
    trainCount: s.referenceTrainImages,
    testCount: s.testImages,
    seed: s.seed,
  });
  // The models have ten outputs; a reference set of fewer classes leaves the others unused.
  const labels = Array.from({ length: 10 }, (_, k) => set.labels[k] ?? `unused ${k}`);
  return {
    record: {
      id: d.id,
      title: d.title,
      kind: 'reference',
      trainImages: set.train.count,
      geometry: {
        ...set.geometry,
        clippedShare: set.clippedShare,
        linfToBoundary: set.linfToBoundary,
        l2ToBoundary: set.geometry.separation / 2,
      },
    },
    train: set.train,
    test: set.test,
    labels,
    key: { reference: set.geometry, count: s.referenceTrainImages, seed: s.seed },
  };
}

const asLabelled = (set: ImageSet, count = set.count): LabelledPixels => ({
  pixels: set.pixels.subarray(0, count * set.height * set.width),
  labels: Int32Array.from(set.labels.subarray(0, count)),
  count,
});

/** p(none | logits) of a model with a density head (MLP-PNN), from its metadata; undefined for others. */
function noneProbabilityFor(model: InferenceModel): ((logits: Float32Array) => number) | undefined {
  const pnn = model.metadata.variant?.pnn;
  return pnn ? (logits) => noneProbabilityOf(logits, pnn.logBackground) : undefined;
}

async function runOne(
  data: LoadedDataset,
  variant: StudyVariant,
  options: CausesOptions,
  stage: (text: string) => void,
): Promise<RunResult> {
  const s = options.settings;
  const started = Date.now();
  const train = {
    dataDir: options.dataDir ?? DEFAULT_FASHION_MNIST_DIR,
    epochs: s.epochs,
    batchSize: s.batchSize,
    learningRate: s.learningRate,
    lrSchedule: 'cosine' as const,
    lrDecay: 1,
    warmupEpochs: Math.min(1, s.epochs / 4),
    seed: s.seed,
    workers: s.workers,
    model: { ...s.model, ...variant.training.model },
    adversarial: variant.training.adversarial,
    loss: variant.training.loss,
  };
  // Where the IDX files sit changes nothing; the worker count does (batch statistics and dropout masks per shard).
  const keyed = { ...train, dataDir: undefined };
  stage('training (or loading from the cache)');
  const trained = await trainOrLoad(
    options.cacheDir,
    `study-${data.record.id}-${variant.id}`,
    { data: data.key, training: keyed },
    data.train,
    train,
    data.labels,
  );
  const model = trained.model;
  try {
    stage(`clean forward pass of ${data.test.count} test images`);
    const test = asLabelled(data.test);
    const outputs = await runInBatches(model, test.pixels, test.count);
    const right = outputs.flatMap((o, i) => (argmax(o.probs) === test.labels[i] ? [i] : []));
    const cleanConfidence =
      right.reduce((sum, i) => sum + outputs[i].probs[test.labels[i]], 0) / Math.max(1, right.length);
    const size = model.imageSize;
    const attackIdx = right.filter((i) => i < s.attackImages);
    const attacked: LabelledPixels = {
      pixels: new Float32Array(attackIdx.length * size),
      labels: Int32Array.from(attackIdx, (i) => test.labels[i]),
      count: attackIdx.length,
    };
    attackIdx.forEach((i, k) => attacked.pixels.set(test.pixels.subarray(i * size, (i + 1) * size), k * size));
    if (attacked.count === 0)
      throw new Error(`${variant.id} on ${data.record.id} classifies none of the attacked images right`);
    const robust = await robustness(model, attacked, { ...s, detectionEpsilon: s.detectionEpsilon }, stage);
    stage('geometry of the classes');
    const geo = await geometry(model, { outputs, labels: test.labels }, attacked, robust.cwL2);
    stage('calibrating the detectors');
    const det = await detection(
      model,
      asLabelled(data.train),
      test,
      robust.successful,
      { ...s.calibration, seed: s.seed },
      stage,
    );
    const noneOf = noneProbabilityFor(model);
    const rejected = noneOf ? await rejection(model, noneOf, test, robust.successful) : undefined;
    return {
      dataset: data.record.id,
      variant: variant.id,
      title: variant.title,
      cause: variant.cause,
      model: {
        dir: trained.dir,
        cached: trained.cached,
        trainSeconds: trained.trainSeconds,
        trainImages: trained.trainImages,
        finalLoss: trained.finalLoss,
      },
      cleanAccuracy: right.length / test.count,
      testImages: test.count,
      cleanConfidence,
      attacks: robust.curves,
      geometry: geo,
      detection: det,
      rejection: rejected,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    model.dispose();
  }
}

export type { CausesResult, CausesSettings, RunResult } from './results';

export async function runCausesStudy(options: CausesOptions): Promise<CausesResult> {
  const started = Date.now();
  const variants = options.variants ?? STUDY_VARIANTS;
  const datasets = options.datasets ?? STUDY_DATASETS;
  const runs: RunResult[] = [];
  const records: DatasetRecord[] = [];
  const plan = datasets.flatMap((d) =>
    variants.filter((v) => d.variants === '*' || d.variants.includes(v.id)).map((v) => ({ d, v })),
  );
  let loaded: LoadedDataset | undefined;
  for (const [k, { d, v }] of plan.entries()) {
    if (loaded?.record.id !== d.id) {
      loaded = loadDataset(d, options.settings, options.dataDir ?? DEFAULT_FASHION_MNIST_DIR);
      records.push(loaded.record);
    }
    const data = loaded;
    const stage = (text: string) => options.onStage?.(`[${k + 1}/${plan.length}] ${d.id} × ${v.id}: ${text}`);
    runs.push(await runOne(data, v, options, stage));
  }
  return {
    settings: options.settings,
    datasets: records,
    runs,
    claims: judgeClaims(runs, records, options.settings),
    seconds: (Date.now() - started) / 1000,
    trainedModels: runs.filter((r) => !r.model.cached).length,
    cachedModels: runs.filter((r) => r.model.cached).length,
  };
}
