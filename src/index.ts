/** advsieve as a library: the engine and the data/model helpers the service is built on. */
export { initBackend, activeBackend, describeBackend, BACKEND_NAMES } from './engine/backends';
export type { BackendInfo, BackendName } from './engine/backends';
export { DynamicBatcher, OverloadError, BatcherClosedError } from './engine/batcher';
export type { BatcherOptions, BatcherStats, BatchInfo } from './engine/batcher';
export { Engine, BATCHING_DEFAULTS } from './engine/engine';
export type { EngineOptions } from './engine/engine';
export { InferenceModel, splitBatch } from './engine/model';
export type { BatchOutput, ImageOutput } from './engine/model';
export { loadModel, saveModel, readMetadata, hashModelFiles, ModelFileError } from './engine/modelStore';
export type { ModelMetadata, StoredModel } from './engine/modelStore';
export { InferencePool, WorkerCrashedError } from './engine/pool';
export { registerWebGpuBackend, describeAdapter } from './engine/webgpu';
export type { AdapterDescription } from './engine/webgpu';
export {
  dft2d,
  highFrequencyShare,
  idft2d,
  lowPass,
  lowPassMask,
  powerSpectrum,
  radialFrequencyGrid,
} from './engine/spectra';
export type { LowPassKind, Spectrum } from './engine/spectra';
export { loadFashionMnist, FASHION_LABELS, DEFAULT_FASHION_MNIST_DIR, DatasetMissingError } from './data/fashionMnist';
export { parseIdx, readIdxFile, IdxFormatError } from './data/idx';
export { decodeImage, ImageDecodeError } from './images/decode';
export { auroc, rateAbove, thresholdForFpr, tprAtFpr } from './evaluation/metrics';
