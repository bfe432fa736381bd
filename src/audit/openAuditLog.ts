/**
 * Opens the audit log the configuration asks for — PostgreSQL when DATABASE_URL is set, else the
 * SQLite file, or none with ADVSIEVE_AUDIT=off — migrates it, and keeps it pruned to the retention
 * period: once at start, then every hour on an unref'd timer (it never keeps the process alive).
 */
import { logger } from '../util/logger';
import { AuditLog, DisabledAuditLog, ScreeningFilter, ScreeningQuery } from './auditLog';
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
}

const DAY_MS = 24 * 60 * 60 * 1000;
export const PRUNE_INTERVAL_MS = 60 * 60 * 1000;

export async function openAuditLog(config: AuditConfig, pruneIntervalMs = PRUNE_INTERVAL_MS): Promise<AuditLog> {
  if (!config.enabled) return new DisabledAuditLog();
  const log = config.databaseUrl
    ? await PostgresAuditLog.open({ url: config.databaseUrl, poolSize: config.poolSize })
    : SqliteAuditLog.open({ file: config.sqliteFile, sync: config.sync });
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

  record(rows: Parameters<AuditLog['record']>[0]) {
    return this.log.record(rows);
  }

  screenings(query: ScreeningQuery) {
    return this.log.screenings(query);
  }

  count(filter: ScreeningFilter) {
    return this.log.count(filter);
  }

  prune(before: Date) {
    return this.log.prune(before);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.pruning;
    await this.log.close();
  }
}
