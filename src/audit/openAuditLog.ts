/**
 * Opens the audit log the configuration asks for — PostgreSQL when DATABASE_URL is set, else the
 * SQLite file, or none with ADVSIEVE_AUDIT=off — migrates it, and keeps it pruned to the retention
 * period: once at start, then every hour on an unref'd timer (it never keeps the process alive).
 */
import { logger } from '../util/logger';
import { AuditLog, DisabledAuditLog, RecordOptions, ScreeningFilter, ScreeningQuery } from './auditLog';
import type { CommitLimits } from './groupCommit';
import { PostgresAuditLog } from './postgres';
import { SqliteAuditLog, SqliteSync } from './sqlite';

export interface AuditConfig {
  /** ADVSIEVE_AUDIT: false records nothing. */
  readonly enabled: boolean;
  /** ADVSIEVE_AUDIT_DB: the SQLite file, when no DATABASE_URL. */
  readonly sqliteFile: string;
  /** DATABASE_URL: PostgreSQL instead of SQLite. */
  readonly databaseUrl: string | undefined;
  /** ADVSIEVE_AUDIT_SYNC: SQLite's synchronous setting (see src/audit/sqlite.ts). */
  readonly sync: SqliteSync;
  /** ADVSIEVE_AUDIT_RETENTION_DAYS: rows older are deleted; undefined keeps them forever. */
  readonly retentionDays: number | undefined;
  /** ADVSIEVE_AUDIT_STORE_IMAGES: the image files themselves are stored too. */
  readonly storeImages: boolean;
  /** ADVSIEVE_AUDIT_PG_POOL: PostgreSQL connections at most. */
  readonly poolSize: number;
  /** ADVSIEVE_AUDIT_TIMEOUT_MS: longest a record waits for its commit, and closing for the last writes. */
  readonly timeoutMs: number;
  /** ADVSIEVE_AUDIT_MAX_WAITING_ROWS, _BYTES: records waiting for a commit at most; beyond, AUDIT_UNAVAILABLE. */
  readonly maxWaitingRows: number;
  readonly maxWaitingBytes: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;
export const PRUNE_INTERVAL_MS = 60 * 60 * 1000;

export async function openAuditLog(config: AuditConfig, pruneIntervalMs = PRUNE_INTERVAL_MS): Promise<AuditLog> {
  if (!config.enabled) return new DisabledAuditLog();
  const limits: Partial<CommitLimits> = {
    timeoutMs: config.timeoutMs,
    maxWaitingRows: config.maxWaitingRows,
    maxWaitingBytes: config.maxWaitingBytes,
  };
  const log = config.databaseUrl
    ? await PostgresAuditLog.open({ url: config.databaseUrl, poolSize: config.poolSize, limits })
    : SqliteAuditLog.open({ file: config.sqliteFile, sync: config.sync, limits });
  if (config.retentionDays === undefined) return log;
  const retained = new RetainedAuditLog(log, config.retentionDays * DAY_MS, pruneIntervalMs);
  await retained.pruneNow();
  return retained;
}

/** An audit log with its retention timer: pruned now and then, the timer stopped on close. */
class RetainedAuditLog implements AuditLog {
  private readonly timer: NodeJS.Timeout;
  private pruning: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly log: AuditLog,
    private readonly retentionMs: number,
    intervalMs: number,
  ) {
    this.timer = setInterval(() => void this.pruneNow(), intervalMs).unref();
  }

  get kind() {
    return this.log.kind;
  }

  get location() {
    return this.log.location;
  }

  /** Deletes what is past retention; a failure is logged, not thrown (the next round tries again). */
  pruneNow(): Promise<unknown> {
    const before = new Date(Date.now() - this.retentionMs);
    this.pruning = this.log.prune(before).then(
      (n) => {
        if (n > 0)
          logger.info({ deleted: n, before }, `audit log: ${n} rows older than ${before.toISOString()} deleted`);
      },
      (err: Error) => logger.error({ err }, 'audit log: pruning failed'),
    );
    return this.pruning;
  }

  record(rows: Parameters<AuditLog['record']>[0], options?: RecordOptions) {
    return this.log.record(rows, options);
  }

  screenings(query: ScreeningQuery) {
    return this.log.screenings(query);
  }

  count(filter: ScreeningFilter, limit?: number) {
    return this.log.count(filter, limit);
  }

  prune(before: Date) {
    return this.log.prune(before);
  }

  /** The log first: a prune in progress stops at its next chunk instead of running to its end. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.log.close();
    await this.pruning;
  }
}
