/** The causes study's settings and results: what ./causes.ts measures, ./claims.ts judges and ./causesReport.ts writes. */
import type { ReferenceDataset } from '../data/referenceDatasets';
import type { Detection } from './detection';
import type { Geometry } from './geometry';
import type { Rejection } from './rejection';
import type { AttackCurve } from './robustness';
import type { StudyVariant } from './variants';

export interface CausesSettings {
  readonly fashionTrainImages: number;
  readonly referenceTrainImages: number;
  /** Clean test images: accuracy, geometry, detection's negatives. */
  readonly testImages: number;
  /** Test images attacked (those the model gets right). */
  readonly attackImages: number;
  readonly epochs: number;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly workers: number;
  /** The study's CNN: smaller than the served one, so that a dozen train in minutes. */
  readonly model: { conv1Filters: number; conv2Filters: number; hiddenUnits: number; dropout: number };
  readonly linfBudgets: readonly number[];
  readonly l2Budgets: readonly number[];
  readonly pgdSteps: number;
  readonly cwSteps: number;
  readonly detectionEpsilon: number;
  /** The small calibration fitted per model for detection (training images). */
  readonly calibration: { fit: number; holdout: number; attacked: number };
  readonly seed: number;
}

export interface RunResult {
  readonly dataset: string;
  readonly variant: string;
  readonly title: string;
  readonly cause: StudyVariant['cause'];
  readonly model: {
    readonly dir: string;
    readonly cached: boolean;
    readonly trainSeconds: number;
    readonly trainImages: number;
    readonly finalLoss: number;
  };
  readonly cleanAccuracy: number;
  readonly testImages: number;
  /** Mean probability of the predicted class on the correctly classified clean images. */
  readonly cleanConfidence: number;
  readonly attacks: AttackCurve[];
  readonly geometry: Geometry;
  readonly detection: Detection;
  /** Models with a density head (MLP-PNN): how often p(none) rejects clean and adversarial images. */
  readonly rejection?: Rejection;
  readonly seconds: number;
}

export interface DatasetRecord {
  readonly id: string;
  readonly title: string;
  readonly kind: 'fashion' | 'reference';
  readonly trainImages: number;
  /** Reference sets: the geometry asked for and what it gives. */
  readonly geometry?: ReferenceDataset['geometry'] & {
    readonly clippedShare: number;
    readonly linfToBoundary: number;
    readonly l2ToBoundary: number;
  };
}

export type Verdict = 'supported' | 'partly supported' | 'not supported' | 'contradicted' | 'not measured';

export interface Claim {
  readonly id: string;
  readonly statement: string;
  /** How it is tested, in words. */
  readonly test: string;
  readonly verdict: Verdict;
  readonly evidence: string[];
}

export interface CausesResult {
  readonly settings: CausesSettings;
  readonly datasets: DatasetRecord[];
  readonly runs: RunResult[];
  readonly claims: Claim[];
  readonly seconds: number;
  readonly trainedModels: number;
  readonly cachedModels: number;
}
