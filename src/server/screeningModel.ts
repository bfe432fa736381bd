/**
 * One model the service screens for: its files' identity, its calibration and screener, its own
 * engine (workers and batcher: a 224×224 model's batches never wait behind a 28×28 one's), its
 * attack runner and its threshold policy. The service holds one per configured model
 * (ADVSIEVE_MODEL_DIR, the default, then ADVSIEVE_MODELS); requests name one by `model`.
 */
import { calibrationPath, Calibration, readCalibration } from '../calibration/calibrationFile';
import { Engine } from '../engine/engine';
import { tokensPerImageOf } from '../engine/modelCost';
import { checkModelFiles, ModelMetadata } from '../engine/modelStore';
import { Screener } from '../screening/screener';
import { logger } from '../util/logger';
import { AttackRunner } from './attackRunner';
import { thresholdPolicy, ThresholdPolicy } from './thresholdPolicy';
import type { ServerConfig } from './config';
import type { Metrics } from '../request/metrics';

export interface ModelSource {
  readonly dir: string;
  /** Its calibration file; undefined: the model directory's. */
  readonly calibrationFile?: string;
}

/** What a model's start checks without starting anything: its files and its calibration's. */
export interface CheckedModel {
  readonly source: ModelSource;
  readonly metadata: ModelMetadata;
  readonly sha256: string;
  readonly calibration: Calibration;
  readonly calibrationSha256: string;
}

/**
 * Every model file and calibration, checked before any worker of any model starts: a broken or
 * mismatched file stops the start in milliseconds, naming it. Two models with one id are refused:
 * requests, metrics and the audit log tell models apart by id.
 */
export function checkModels(sources: readonly ModelSource[]): CheckedModel[] {
  const checked = sources.map((source): CheckedModel => {
    const { metadata, sha256 } = checkModelFiles(source.dir);
    const file = source.calibrationFile ?? calibrationPath(source.dir);
    const { calibration, sha256: calibrationSha256 } = readCalibration(file, sha256);
    return { source, metadata, sha256, calibration, calibrationSha256 };
  });
  const seen = new Map<string, string>();
  for (const c of checked) {
    const other = seen.get(c.metadata.id);
    if (other !== undefined)
      throw new Error(`two models have the id '${c.metadata.id}' (${other} and ${c.source.dir}); ids must differ`);
    seen.set(c.metadata.id, c.source.dir);
  }
  return checked;
}

export class ScreeningModel {
  private policy: ThresholdPolicy | undefined;

  private constructor(
    private readonly config: ServerConfig,
    readonly dir: string,
    readonly metadata: ModelMetadata,
    /** Hex SHA-256 of model.json and the weights. */
    readonly sha256: string,
    readonly calibration: Calibration,
    /** SHA-256 of the calibration's bytes: its version in the audit log. */
    readonly calibrationSha256: string,
    readonly screener: Screener,
    readonly engine: Engine,
    readonly attacks: AttackRunner | undefined,
  ) {}

  get id(): string {
    return this.metadata.id;
  }

  /** Starts the model's engine (its workers load the model); `checked` comes from checkModels. */
  static async start(checked: CheckedModel, config: ServerConfig, metrics: Metrics): Promise<ScreeningModel> {
    const { metadata, calibration } = checked;
    const screener = new Screener(calibration, metadata.labels);
    if (config.targetFpr !== undefined) screener.thresholds(config.targetFpr);
    const engine = await Engine.start({
      modelDir: checked.source.dir,
      workers: config.workers,
      maxBatch: config.maxBatch,
      maxDelayMs: config.maxDelayMs,
      maxQueue: config.maxQueue,
      // The purified image too, so that `returnPurifiedImage` costs no second pass.
      extras: { ...screener.extras, lowPassPixels: true },
      onBatch: (info) => metrics.observeBatch(info, metadata.id),
      faultInjection: config.faultInjection,
    });
    metrics.observeEngine(metadata.id, engine);
    const attacks = config.attacksEnabled
      ? new AttackRunner({ modelDir: checked.source.dir, backend: engine.pool.backend }, config.attackMaxWaiting)
      : undefined;
    logger.info(
      { model: metadata.id, calibration: calibration.createdAt, workers: engine.pool.size },
      `model ${metadata.id} ready: calibration of ${calibration.createdAt}, ${engine.pool.size} workers`,
    );
    return new ScreeningModel(
      config,
      checked.source.dir,
      metadata,
      checked.sha256,
      calibration,
      checked.calibrationSha256,
      screener,
      engine,
      attacks,
    );
  }

  /** The false-positive rate thresholds are read at unless a request says otherwise. */
  get defaultTargetFpr(): number {
    return this.config.targetFpr ?? this.calibration.defaultTargetFpr;
  }

  /** Which targetFpr a client may ask for (src/server/thresholdPolicy.ts): per model, its hold-out bounds it. */
  get thresholdPolicy(): ThresholdPolicy {
    this.policy ??= thresholdPolicy({
      operatorFpr: this.defaultTargetFpr,
      maxFpr: this.config.maxTargetFpr,
      holdoutSize: Math.min(...Object.values(this.calibration.holdoutScores).map((s) => s.length)),
      openMayLoosen: this.config.allowLooserTargetFpr,
    });
    return this.policy;
  }

  /**
   * Rate-limit tokens per image for this model (a field's per-image tokens are multiplied by it):
   * its forward FLOPs in units of the bundled model's (src/engine/modelCost.ts), so that a client's
   * budget buys the same compute whichever model it asks for.
   */
  get tokensPerImage(): number {
    return tokensPerImageOf(this.engine.pool.flopsPerImage);
  }

  /** Every worker up. */
  get ready(): boolean {
    const pool = this.engine.pool;
    return pool.size > 0 && pool.readyWorkers === pool.size;
  }

  /** Finishes the queued batches and any admitted attack, then stops the workers. */
  async close(): Promise<void> {
    await Promise.all([this.engine.close(), this.attacks?.close()]);
  }
}
