/**
 * The screening service behind the API: the engine (with the screening features computed in its
 * workers), the screener that turns engine outputs into verdicts, and the attack runner. One per
 * process; per-request state lives in RequestImages, never here.
 */
import { calibrationPath, Calibration, loadCalibration } from '../calibration/calibrationFile';
import { initBackend } from '../engine/backends';
import { Engine } from '../engine/engine';
import { hashModelFiles, ModelMetadata, readMetadata } from '../engine/modelStore';
import { Screener } from '../screening/screener';
import { logger } from '../util/logger';
import { AttackRunner } from './attackRunner';
import type { ServerConfig } from './config';
import type { Metrics } from './metrics';

export class ScreeningService {
  private closing = false;

  private constructor(
    readonly config: ServerConfig,
    readonly metadata: ModelMetadata,
    readonly modelSha256: string,
    readonly calibration: Calibration,
    readonly screener: Screener,
    readonly engine: Engine,
    readonly metrics: Metrics,
    readonly attacks: AttackRunner | undefined,
  ) {}

  /**
   * Checks the model and its calibration before any worker starts (a missing or mismatched
   * calibration fails in milliseconds, naming the file), then starts the engine.
   */
  static async start(config: ServerConfig, metrics: Metrics): Promise<ScreeningService> {
    const metadata = readMetadata(config.modelDir);
    const sha256 = hashModelFiles(config.modelDir);
    const calibration = loadCalibration(config.calibrationFile ?? calibrationPath(config.modelDir), sha256);
    const screener = new Screener(calibration, metadata.labels);
    if (config.targetFpr !== undefined) screener.thresholds(config.targetFpr);
    // This thread runs only small spectral work (spectrum, a defense at another radius) on 28×28-
    // sized images: the plain-JS backend, so it competes with no worker for a wasm instance.
    await initBackend('cpu');
    const engine = await Engine.start({
      modelDir: config.modelDir,
      workers: config.workers,
      maxBatch: config.maxBatch,
      maxDelayMs: config.maxDelayMs,
      maxQueue: config.maxQueue,
      // The purified image too, so that `returnPurifiedImage` costs no second pass.
      extras: { ...screener.extras, lowPassPixels: true },
      onBatch: metrics.observeBatch,
    });
    const attacks = config.attacksEnabled
      ? new AttackRunner({ modelDir: config.modelDir, backend: engine.pool.backend }, config.attackMaxWaiting)
      : undefined;
    logger.info(
      { model: metadata.id, calibration: calibration.createdAt, attacks: config.attacksEnabled },
      `screening service ready: ${metadata.id}, calibration of ${calibration.createdAt}, attacks ${config.attacksEnabled ? 'on' : 'off'}`,
    );
    return new ScreeningService(config, metadata, sha256, calibration, screener, engine, metrics, attacks);
  }

  /** The false-positive rate thresholds are read at unless a request says otherwise. */
  get defaultTargetFpr(): number {
    return this.config.targetFpr ?? this.calibration.defaultTargetFpr;
  }

  /** Model loaded, every worker up, not shutting down. */
  get ready(): boolean {
    const pool = this.engine.pool;
    return !this.closing && pool.size > 0 && pool.readyWorkers === pool.size;
  }

  /** Finishes the queued batches and any admitted attack, then stops the workers. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([this.engine.close(), this.attacks?.close()]);
  }
}
