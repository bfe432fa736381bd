/** The service described: model, calibration, batching, limits and the engine's batch statistics. */
import { COMBINED } from '../detectors/registry';
import type { EngineStats, Limits, ModelInfo } from '../schema/model-info.type';
import type { ScreeningModel } from './screeningModel';
import type { ScreeningService } from './service';

export function modelInfo(model: ScreeningModel): ModelInfo {
  const { metadata, calibration, engine, screener } = model;
  const pool = engine.pool;
  const a = pool.adapter;
  const thresholds = screener.thresholds(model.defaultTargetFpr);
  const measured = calibration.summary as Record<
    string,
    { aurocOnCalibrationAttacks?: number; tprAtTargetFpr?: number }
  >;
  return {
    id: metadata.id,
    sha256: model.sha256,
    labels: [...metadata.labels],
    inputShape: [...metadata.inputShape],
    backend: pool.backend,
    adapter: a ? `${a.vendor} ${a.device}${a.software ? ' (software)' : ''}` : undefined,
    gpu: pool.gpu,
    layers: [...metadata.activationLayers],
    forwardFlops: engine.pool.flopsPerImage,
    tokensPerImage: model.tokensPerImage,
    batching: engine.batching,
    attacksEnabled: model.attacks !== undefined,
    calibration: {
      createdAt: calibration.createdAt,
      modelSha256: calibration.model.sha256,
      defaultTargetFpr: model.defaultTargetFpr,
      hiddenLayer: calibration.hiddenLayer,
      lowPassRadius: calibration.lowPass.radius,
      lowPassKind: calibration.lowPass.kind,
      cleanAccuracy: calibration.lowPass.cleanAccuracy,
      filteredAccuracy: calibration.lowPass.filteredAccuracy,
      thresholdImages: calibration.data.thresholdImages,
      attacks: [...calibration.data.attacks],
      detectors: [...screener.detectors.map((d) => d.name), COMBINED].map((name) => ({
        name,
        threshold: thresholds[name],
        auroc: measured[name]?.aurocOnCalibrationAttacks,
        tprAtTargetFpr: measured[name]?.tprAtTargetFpr,
      })),
    },
  };
}

export function engineStats(model: ScreeningModel): EngineStats {
  const s = model.engine.stats();
  const tensors = model.engine.pool.tensorStats();
  return {
    ...s,
    workerTensors: tensors.numTensors,
    workerTensorBytes: tensors.numBytes,
    batchSizes: Object.entries(s.batchSizes)
      .map(([size, count]) => ({ size: Number(size), count }))
      .sort((a, b) => a.size - b.size),
  };
}

export function limits(service: ScreeningService): Limits {
  const c = service.config;
  return {
    maxFileBytes: c.maxFileBytes,
    maxFiles: c.maxFiles,
    maxImages: c.maxImages,
    maxBodyBytes: c.maxBodyBytes,
    maxPixels: c.maxPixels,
    attackMaxSteps: c.attackMaxSteps,
  };
}
