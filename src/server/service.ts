/**
 * The screening service behind the API: the engine (with the screening features computed in its
 * workers), the screener that turns engine outputs into verdicts, and the attack runner. One per
 * process; per-request state lives in RequestImages, never here.
 */
import type { AuditLog } from '../audit/auditLog';
import { openAuditLog } from '../audit/openAuditLog';
import { calibrationPath, Calibration, readCalibration } from '../calibration/calibrationFile';
import { initBackend } from '../engine/backends';
import { Engine } from '../engine/engine';
import { checkModelFiles, ModelMetadata } from '../engine/modelStore';
import { Screener } from '../screening/screener';
import { logger } from '../util/logger';
import { DecodePool } from '../images/decodePool';
import { JsonBodyParser } from './jsonBodyParser';
import { AnalysisRunner } from './analysisRunner';
import { AttackRunner } from './attackRunner';
import { thresholdPolicy, ThresholdPolicy } from './thresholdPolicy';
import type { ServerConfig } from './config';
import type { Metrics } from '../request/metrics';

export class ScreeningService {
  private closing = false;
  /**
   * The decode processes (ADVSIEVE_DECODE_CONCURRENCY of them): every image is decoded there, never
   * on this thread, within ADVSIEVE_DECODE_TIMEOUT_MS (src/images/decodePool.ts).
   */
  readonly decodePool: DecodePool;
  /** Large JSON bodies and their base64 images, parsed off this thread (src/server/jsonBodyParser.ts). */
  readonly bodyParser: JsonBodyParser;
  /** `spectrum` and `defend(radius)`'s DFTs and plots, on a worker thread of their own (src/server/analysisRunner.ts). */
  readonly analysis = new AnalysisRunner();

  private constructor(
    readonly config: ServerConfig,
    readonly metadata: ModelMetadata,
    readonly modelSha256: string,
    readonly calibration: Calibration,
    readonly screener: Screener,
    readonly engine: Engine,
    readonly metrics: Metrics,
    readonly attacks: AttackRunner | undefined,
    /** Where every verdict is recorded before it is sent (src/audit/); kind 'off' with ADVSIEVE_AUDIT=off. */
    readonly audit: AuditLog,
    /** SHA-256 of the calibration file's bytes: its version in the audit log (the file has no other). */
    readonly calibrationSha256: string,
  ) {
    this.decodePool = new DecodePool(config.decodeConcurrency, config.decodeTimeoutMs);
    this.bodyParser = new JsonBodyParser(config.maxFileBytes);
    metrics.observeDecodePool(this.decodePool);
  }

  /**
   * Checks the model and its calibration before any worker starts (a missing or mismatched
   * calibration fails in milliseconds, naming the file), then starts the engine.
   */
  static async start(config: ServerConfig, metrics: Metrics): Promise<ScreeningService> {
    // Every model file checked here, before any worker starts: a broken one stops the start naming it.
    const { metadata, sha256 } = checkModelFiles(config.modelDir);
    const calibrationFile = config.calibrationFile ?? calibrationPath(config.modelDir);
    const { calibration, sha256: calibrationSha256 } = readCalibration(calibrationFile, sha256);
    const screener = new Screener(calibration, metadata.labels);
    if (config.targetFpr !== undefined) screener.thresholds(config.targetFpr);
    // This thread runs only small spectral work (spectrum, a defense at another radius) on 28×28-
    // sized images: the plain-JS backend, so it competes with no worker for a wasm instance.
    await initBackend('cpu');
    // Before the workers: a bad DATABASE_URL or an unwritable audit file stops the start at once.
    const audit = await openAuditLog(config.audit);
    logger.info({ audit: audit.kind, location: audit.location }, `audit log: ${audit.kind} (${audit.location})`);
    const engine = await Engine.start({
      modelDir: config.modelDir,
      workers: config.workers,
      maxBatch: config.maxBatch,
      maxDelayMs: config.maxDelayMs,
      maxQueue: config.maxQueue,
      // The purified image too, so that `returnPurifiedImage` costs no second pass.
      extras: { ...screener.extras, lowPassPixels: true },
      onBatch: metrics.observeBatch,
      faultInjection: config.faultInjection,
    }).catch(async (err: unknown) => {
      await audit.close(); // a pool of PostgreSQL connections would keep the failed process alive
      throw err;
    });
    metrics.observeEngine(engine);
    const attacks = config.attacksEnabled
      ? new AttackRunner({ modelDir: config.modelDir, backend: engine.pool.backend }, config.attackMaxWaiting)
      : undefined;
    logger.info(
      { model: metadata.id, calibration: calibration.createdAt, attacks: config.attacksEnabled },
      `screening service ready: ${metadata.id}, calibration of ${calibration.createdAt}, attacks ${config.attacksEnabled ? 'on' : 'off'}`,
    );
    const service = new ScreeningService(
      config,
      metadata,
      sha256,
      calibration,
      screener,
      engine,
      metrics,
      attacks,
      audit,
      calibrationSha256,
    );
    // Not fatal: a worker that cannot start now fails the analyses that need it, each with its error.
    await service.analysis.warm().catch((err: Error) => logger.warn({ err }, 'analysis worker did not start'));
    return service;
  }

  /** The false-positive rate thresholds are read at unless a request says otherwise. */
  get defaultTargetFpr(): number {
    return this.config.targetFpr ?? this.calibration.defaultTargetFpr;
  }

  /** Which targetFpr a client may ask for (src/server/thresholdPolicy.ts). */
  get thresholdPolicy(): ThresholdPolicy {
    this.policy ??= thresholdPolicy({
      operatorFpr: this.defaultTargetFpr,
      maxFpr: this.config.maxTargetFpr,
      holdoutSize: Math.min(...Object.values(this.calibration.holdoutScores).map((s) => s.length)),
      openMayLoosen: this.config.allowLooserTargetFpr,
    });
    return this.policy;
  }

  private policy: ThresholdPolicy | undefined;

  /** Model loaded, every worker up, not shutting down. */
  get ready(): boolean {
    const pool = this.engine.pool;
    return !this.closing && pool.size > 0 && pool.readyWorkers === pool.size;
  }

  /** Finishes the queued batches and any admitted attack, then stops the workers, then closes the audit log. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([this.engine.close(), this.attacks?.close(), this.analysis.close()]);
    await Promise.all([this.decodePool.close(), this.bodyParser.close()]);
    // Last: the requests that were in flight have recorded their verdicts by now.
    await this.audit.close();
  }
}
