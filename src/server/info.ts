/** The service described: model, calibration, batching, limits and the engine's batch statistics. */
import { COMBINED } from '../detectors/registry';
import type { EngineStats, Limits, ModelInfo } from '../schema/model-info.type';
import type { ScreeningService } from './service';

export function modelInfo(service: ScreeningService): ModelInfo {
  const { metadata, calibration, engine, screener } = service;
  const pool = engine.pool;
  const a = pool.adapter;
  const thresholds = screener.thresholds(service.defaultTargetFpr);
  const measured = calibration.summary as Record<
    string,
    { aurocOnCalibrationAttacks?: number; tprAtTargetFpr?: number }
  >;
  return {
    id: metadata.id,
    sha256: service.modelSha256,
    labels: [...metadata.labels],
    inputShape: [...metadata.inputShape],
    backend: pool.backend,
    adapter: a ? `${a.vendor} ${a.device}${a.software ? ' (software)' : ''}` : undefined,
    gpu: pool.gpu,
    layers: [...metadata.activationLayers],
    batching: engine.batching,
    attacksEnabled: service.attacks !== undefined,
    calibration: {
      createdAt: calibration.createdAt,
      modelSha256: calibration.model.sha256,
      defaultTargetFpr: service.defaultTargetFpr,
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

export function engineStats(service: ScreeningService): EngineStats {
  const s = service.engine.stats();
  const tensors = service.engine.pool.tensorStats();
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
