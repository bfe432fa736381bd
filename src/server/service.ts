/**
 * The screening service behind the API: its models (each with its engine, calibration, screener
 * and attack runner: src/server/screeningModel.ts), the decode processes, the JSON body parser, the
 * analysis worker and the audit log. One per process; per-request state lives in RequestImages,
 * never here.
 */
import type { AuditLog } from '../audit/auditLog';
import { openAuditLog } from '../audit/openAuditLog';
import { initBackend } from '../engine/backends';
import { logger } from '../util/logger';
import { DecodePool } from '../images/decodePool';
import { unknownModel } from '../request/errors';
import { JsonBodyParser } from './jsonBodyParser';
import { AnalysisRunner } from './analysisRunner';
import { checkModels, ScreeningModel } from './screeningModel';
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
  private readonly byId: ReadonlyMap<string, ScreeningModel>;

  private constructor(
    readonly config: ServerConfig,
    /** Every model served, the default first. */
    readonly models: readonly ScreeningModel[],
    readonly metrics: Metrics,
    /** Where every verdict is recorded before it is sent (src/audit/); kind 'off' with ADVSIEVE_AUDIT=off. */
    readonly audit: AuditLog,
  ) {
    this.byId = new Map(models.map((m) => [m.id, m]));
    this.decodePool = new DecodePool(config.decodeConcurrency, config.decodeTimeoutMs);
    this.bodyParser = new JsonBodyParser(config.maxFileBytes);
    metrics.observeDecodePool(this.decodePool);
  }

  /** The model requests get when they name none: ADVSIEVE_MODEL_DIR's (the bundled one by default). */
  get defaultModel(): ScreeningModel {
    return this.models[0];
  }

  /** The model a request names (its `model` argument), or the default; UNKNOWN_MODEL names the ones served. */
  model(id: string | null | undefined): ScreeningModel {
    if (id == null) return this.defaultModel;
    const m = this.byId.get(id);
    if (!m) throw unknownModel(id, [...this.byId.keys()]);
    return m;
  }

  /**
   * Checks every model and its calibration before any worker starts (a missing or mismatched file
   * fails in milliseconds, naming it), then starts each model's engine.
   */
  static async start(config: ServerConfig, metrics: Metrics): Promise<ScreeningService> {
    const checked = checkModels([
      { dir: config.modelDir, calibrationFile: config.calibrationFile },
      ...config.extraModelDirs.map((dir) => ({ dir })),
    ]);
    // This thread runs only small spectral work (spectrum, a defense at another radius) on 28×28-
    // sized images: the plain-JS backend, so it competes with no worker for a wasm instance.
    await initBackend('cpu');
    // Before the workers: a bad DATABASE_URL or an unwritable audit file stops the start at once.
    const audit = await openAuditLog(config.audit);
    logger.info({ audit: audit.kind, location: audit.location }, `audit log: ${audit.kind} (${audit.location})`);
    const models: ScreeningModel[] = [];
    try {
      // One after another: two models' workers loading at once would only share the same cores.
      for (const c of checked) models.push(await ScreeningModel.start(c, config, metrics));
    } catch (err) {
      await Promise.all(models.map((m) => m.close()));
      await audit.close(); // a pool of PostgreSQL connections would keep the failed process alive
      throw err;
    }
    logger.info(
      { models: models.map((m) => m.id), attacks: config.attacksEnabled },
      `screening service ready: ${models.map((m) => m.id).join(', ')} (default ${models[0].id}), attacks ${config.attacksEnabled ? 'on' : 'off'}`,
    );
    const service = new ScreeningService(config, models, metrics, audit);
    // Not fatal: a worker that cannot start now fails the analyses that need it, each with its error.
    await service.analysis.warm().catch((err: Error) => logger.warn({ err }, 'analysis worker did not start'));
    return service;
  }

  /** Every model loaded with every worker up, not shutting down. */
  get ready(): boolean {
    return !this.closing && this.models.every((m) => m.ready);
  }

  /** Finishes the queued batches and any admitted attack, then stops the workers, then closes the audit log. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.models.map((m) => m.close()), this.analysis.close()]);
    await Promise.all([this.decodePool.close(), this.bodyParser.close()]);
    // Last: the requests that were in flight have recorded their verdicts by now.
    await this.audit.close();
  }
}
