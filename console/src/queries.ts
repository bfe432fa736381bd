/** The GraphQL documents the console sends, and the shapes of what they answer (schema.graphql). */

export interface Prediction {
  readonly classIndex: number;
  readonly label: string;
  readonly confidence: number;
}

export interface DetectorScore {
  readonly name: string;
  readonly score: number;
  readonly threshold: number;
  readonly flagged: boolean;
}

export interface ImageError {
  readonly code: string;
  readonly message: string;
}

export interface ScreenResult {
  readonly index: number;
  readonly sha256: string | null;
  readonly model: string | null;
  readonly prediction: Prediction | null;
  readonly detection: {
    readonly adversarial: boolean;
    readonly score: number;
    readonly threshold: number;
    readonly targetFpr: number;
    readonly detectors: readonly DetectorScore[];
  } | null;
  readonly defense: {
    readonly prediction: Prediction | null;
    readonly purifiedImage: string | null;
    readonly changed: boolean | null;
  } | null;
  readonly flaggedView: string | null;
  readonly error: ImageError | null;
}

const PREDICTION = 'classIndex label confidence';

// defend + returnPurifiedImage: the defense's image and prediction come with the verdict, under the
// `screen` scope, without a second request.
export const SCREEN = `mutation Screen($images: [ImageInput!]!, $model: String) {
  screen(images: $images, model: $model, options: { defend: true, returnPurifiedImage: true }) {
    index sha256 model flaggedView
    prediction { ${PREDICTION} }
    detection { adversarial score threshold targetFpr detectors { name score threshold flagged } }
    defense { prediction { ${PREDICTION} } purifiedImage changed }
    error { code message }
  }
}`;

export interface SpectrumResult {
  readonly logMagnitudePng: string | null;
  readonly highFrequencyShare: number | null;
  readonly cutoff: number | null;
  readonly error: ImageError | null;
}

export interface TrajectoryStep {
  readonly layer: string;
  readonly nearestClass: number;
  readonly nearestLabel: string;
  readonly distances: readonly number[];
}

export interface ClassActivationMap {
  readonly classIndex: number;
  readonly label: string;
  readonly probability: number;
  readonly overlay: string;
}

export interface ImageDetails {
  readonly spectrum: SpectrumResult;
  readonly explain: {
    readonly layer: string | null;
    readonly maps: readonly ClassActivationMap[] | null;
    readonly error: ImageError | null;
  };
  readonly trajectory: {
    readonly prediction: Prediction | null;
    readonly steps: readonly TrajectoryStep[] | null;
    readonly error: ImageError | null;
  };
}

const SPECTRUM = 'logMagnitudePng highFrequencyShare cutoff error { code message }';
const STEPS = 'layer nearestClass nearestLabel distances';

// The three `oracle` fields of one image, in one request: one upload fills all three places.
export const DETAILS = `query Details($image: ImageInput!, $model: String) {
  spectrum(image: $image, model: $model) { ${SPECTRUM} }
  explain(image: $image, model: $model) { layer maps { classIndex label probability overlay } error { code message } }
  trajectory(image: $image, model: $model) { prediction { ${PREDICTION} } steps { ${STEPS} } error { code message } }
}`;

export interface ComparedImage {
  readonly prediction: Prediction | null;
  readonly sha256: string | null;
  readonly cam: ClassActivationMap | null;
  readonly trajectory: readonly TrajectoryStep[] | null;
  readonly error: ImageError | null;
}

export interface CompareResult {
  readonly model: string | null;
  readonly clean: ComparedImage;
  readonly suspect: ComparedImage;
  readonly perturbation: {
    readonly linf: number;
    readonly l2: number;
    readonly amplification: number;
    readonly image: string;
  } | null;
  readonly perturbationSpectrum: SpectrumResult | null;
  readonly promotionSuppression: {
    readonly type: string;
    readonly drop: number;
    readonly rise: number;
    readonly originClass: number;
    readonly targetClass: number;
  } | null;
}

const COMPARED = `prediction { ${PREDICTION} } sha256 cam { classIndex label probability overlay } trajectory { ${STEPS} } error { code message }`;

export const COMPARE = `query Compare($clean: ImageInput!, $suspect: ImageInput!, $model: String) {
  compare(clean: $clean, suspect: $suspect, model: $model) {
    model
    clean { ${COMPARED} }
    suspect { ${COMPARED} }
    perturbation { linf l2 amplification image }
    perturbationSpectrum { ${SPECTRUM} }
    promotionSuppression { type drop rise originClass targetClass }
  }
}`;

export interface Screening {
  readonly id: string;
  readonly time: string;
  readonly requestId: string;
  readonly clientRequestId: string | null;
  readonly keyId: string | null;
  readonly operation: string;
  readonly index: number;
  readonly sha256: string | null;
  readonly byteSize: number | null;
  readonly prediction: Prediction | null;
  readonly adversarial: boolean | null;
  readonly score: number | null;
  readonly threshold: number | null;
  readonly targetFpr: number | null;
  readonly detectors: readonly DetectorScore[] | null;
  readonly defensePrediction: Prediction | null;
  readonly errorCode: string | null;
  readonly modelId: string;
  readonly modelSha256: string;
  readonly calibrationSha256: string;
  readonly calibrationCreatedAt: string;
}

export interface ScreeningPage {
  readonly screenings: {
    readonly totalCount: number;
    readonly pageInfo: { readonly hasNextPage: boolean; readonly endCursor: string | null };
    readonly edges: ReadonlyArray<{ readonly node: Screening }>;
  };
}

export const SCREENINGS = `query Screenings($filter: ScreeningFilter, $first: Int!, $after: String) {
  screenings(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node {
      id time requestId clientRequestId keyId operation index sha256 byteSize
      prediction { ${PREDICTION} }
      adversarial score threshold targetFpr detectors { name score threshold flagged }
      defensePrediction { ${PREDICTION} }
      errorCode modelId modelSha256 calibrationSha256 calibrationCreatedAt
    } }
  }
}`;

export interface ModelInfo {
  readonly id: string;
  readonly sha256: string;
  readonly labels: readonly string[];
  readonly inputShape: readonly number[];
  readonly backend: string;
  readonly layers: readonly string[];
  readonly tokensPerImage: number;
  readonly attacksEnabled: boolean;
  readonly batching: {
    readonly maxBatch: number;
    readonly maxDelayMs: number;
    readonly maxQueue: number;
    readonly workers: number;
  };
  readonly calibration: {
    readonly createdAt: string;
    readonly defaultTargetFpr: number;
    readonly thresholdImages: number;
    readonly lowPassRadius: number;
    readonly lowPassKind: string;
    readonly cleanAccuracy: number | null;
    readonly filteredAccuracy: number | null;
    readonly attacks: readonly string[];
    readonly detectors: ReadonlyArray<{
      readonly name: string;
      readonly threshold: number;
      readonly auroc: number | null;
      readonly tprAtTargetFpr: number | null;
    }>;
  };
}

export const MODELS = `query Models {
  models {
    id sha256 labels inputShape backend layers tokensPerImage attacksEnabled
    batching { maxBatch maxDelayMs maxQueue workers }
    calibration {
      createdAt defaultTargetFpr thresholdImages lowPassRadius lowPassKind cleanAccuracy filteredAccuracy attacks
      detectors { name threshold auroc tprAtTargetFpr }
    }
  }
}`;

export const MODEL_IDS = `query ModelIds { models { id labels } }`;

export interface EngineStats {
  readonly items: number;
  readonly batches: number;
  readonly queueDepth: number;
  readonly inFlight: number;
  readonly rejected: number;
  readonly expired: number;
  readonly failedBatches: number;
  readonly batchSizes: ReadonlyArray<{ readonly size: number; readonly count: number }>;
}

export const ENGINE_STATS = `query EngineStats($model: String) {
  engineStats(model: $model) { items batches queueDepth inFlight rejected expired failedBatches batchSizes { size count } }
}`;
