/** advsieve as a library: the engine and the data/model helpers the service is built on. */
export { initBackend, activeBackend, describeBackend, BACKEND_NAMES } from './engine/backends';
export type { BackendInfo, BackendName } from './engine/backends';
export { DynamicBatcher, OverloadError, BatcherClosedError } from './engine/batcher';
export type { BatcherOptions, BatcherStats, BatchInfo } from './engine/batcher';
export { Engine, BATCHING_DEFAULTS } from './engine/engine';
export type { EngineOptions } from './engine/engine';
export { InferenceModel, splitBatch } from './engine/model';
export type { BatchExtras, BatchOutput, ImageOutput } from './engine/model';
export { loadModel, saveModel, readMetadata, hashModelFiles, ModelFileError } from './engine/modelStore';
export type { ModelMetadata, StoredModel } from './engine/modelStore';
export { InferencePool, WorkerCrashedError } from './engine/pool';
export { registerWebGpuBackend, describeAdapter } from './engine/webgpu';
export type { AdapterDescription } from './engine/webgpu';
export {
  dft2d,
  highFrequencyShare,
  highFrequencyShareImages,
  idft2d,
  lowPass,
  lowPassImages,
  lowPassMask,
  powerSpectrum,
  radialFrequencyGrid,
} from './engine/spectra';
export type { LowPassKind, Spectrum } from './engine/spectra';
export { loadFashionMnist, FASHION_LABELS, DEFAULT_FASHION_MNIST_DIR, DatasetMissingError } from './data/fashionMnist';
export { parseIdx, readIdxFile, IdxFormatError } from './data/idx';
export { decodeImage, ImageDecodeError } from './images/decode';
export { auroc, rateAbove, rocCurve, thresholdForFpr, tprAtFpr } from './evaluation/metrics';
export { loadImageFolder } from './data/imageFolder';
export { screeningDetectors, COMBINED } from './detectors/registry';
export type { Detector, FitData, ImageFeatures, TensorFeatures } from './detectors/detector';
export { trajectory } from './detectors/classExpectations';
export type { TrajectoryStep } from './detectors/classExpectations';
export { DEFENSE_NAMES, makeDefense } from './defenses/registry';
export type { Defense, DefenseName } from './defenses/defense';
export { ATTACK_NAMES, getAttack } from './attacks/registry';
export type { Attack, AttackName, AttackOptions, AttackTarget } from './attacks/attack';
export { modelTarget } from './attacks/target';
export { lowPassTarget, detectorAwareTarget } from './attacks/adaptive';
export { calibrate, CALIBRATE_DEFAULTS } from './calibration/calibrate';
export {
  loadCalibration,
  saveCalibration,
  readCalibration,
  calibrationPath,
  sidecarPath,
  CalibrationError,
  CALIBRATION_SCHEMA_VERSION,
} from './calibration/calibrationFile';
export type { Calibration } from './calibration/calibrationFile';
export { Screener, prediction } from './screening/screener';
export type { ScreenOutcome, Detection, DetectorScore, Prediction } from './screening/screener';
export { evaluate } from './evaluation/evaluate';
export { EVALUATION_ATTACKS } from './evaluation/attackSuite';
export { startServer } from './server/server';
export type { RunningServer } from './server/server';
export { configFromEnv, ConfigError } from './server/config';
export type { ServerConfig } from './server/config';
export { ScreeningService } from './server/service';
export { buildApiSchema, schemaSdl } from './schema';
