/**
 * The audit log in PostgreSQL (pg), chosen by DATABASE_URL: for several service instances sharing
 * one log, and for a database with its own backups and replication.
 *
 * Durability is the server's: with PostgreSQL's default `synchronous_commit = on` a COMMIT returns
 * only after its WAL record is flushed to disk, so `record` resolving means the rows survive a crash
 * of this process and of the database server. A group (src/audit/groupCommit.ts) is one multi-row
 * INSERT (one statement is atomic on its own; a larger group is several statements in one
 * transaction), so a commit's round trip and WAL flush are paid once per group.
 *
 * Time: every connection runs with statement_timeout = ADVSIEVE_AUDIT_TIMEOUT_MS, so the server
 * cancels a statement stuck on a lock or a stalled disk (and rolls it back: a group that timed out
 * this way is not in the log), and each query also gives up on the client side a little later
 * (query_timeout), for a connection that stopped answering altogether — the pool then drops it.
 * TCP keepalive finds dead idle connections. Records fail at their own time limit whatever the
 * write does (src/audit/groupCommit.ts). Migrations run without a statement timeout.
 *
 * Ids come from an identity column: within one instance they follow commit order (one commit at a
 * time); with several instances writing, a row may commit after a row with a higher id, so a client
 * paging newest-first at that very moment can miss it (it is there on the next read from the top).
 */
import { Pool, QueryConfig } from 'pg';
import { logger } from '../util/logger';
import {
  AuditLog,
  AuditLogError,
  AuditRecord,
  COUNT_LIMIT,
  recordBytes,
  RecordOptions,
  ScreeningFilter,
  ScreeningPage,
  ScreeningQuery,
} from './auditLog';
import { COLUMNS, recordOf, rowValues, whereClause } from './columns';
import { CommitLimits, DEFAULT_COMMIT_LIMITS, GroupCommit, GroupWriteError, settledWithin } from './groupCommit';
import { Migration, MIGRATIONS, pendingMigrations, SCHEMA_MIGRATIONS_TABLE } from './migrations';
import { redactedUrl } from '../util/redactedUrl';

export interface PostgresAuditOptions {
  readonly url: string;
  /** Connections at most (the service writes one group at a time; reads and pruning use the others). */
  readonly poolSize: number;
  /** Longest to wait for a connection, at start and later (ms). */
  readonly connectTimeoutMs?: number;
  /** For tests of the migration machinery; the real list otherwise. */
  readonly migrations?: readonly Migration[];
  /** Time limits and bounds of the group commit (timeoutMs is also the statement timeout); the defaults otherwise. */
  readonly limits?: Partial<CommitLimits>;
}

/** Rows per INSERT statement: 26 columns × 1000 stays far below PostgreSQL's 65 535 parameters. */
const ROWS_PER_STATEMENT = 1000;

/** pg_advisory_xact_lock key held while migrating ('advs' in ASCII): instances starting together take turns. */
const MIGRATION_LOCK = 0x61647673;

/** How much longer than the server's statement_timeout the client waits for an answer: its cancel arrives first. */
const QUERY_TIMEOUT_GRACE_MS = 1000;

/** Rows deleted per statement when pruning: each statement well within the statement timeout. */
const PRUNE_CHUNK = 5000;

/**
 * SQLSTATE classes about the values written — data exception (22), integrity constraint (23),
 * program limit (54) — after which a group is retried record by record. Anything else (a lost
 * connection, a timeout, a full disk, a read-only server) is the store failing: not retried.
 */
const ROW_ERROR = /^(22|23|54)/;

export class PostgresAuditLog implements AuditLog {
  readonly kind = 'postgres';
  private readonly group: GroupCommit<AuditRecord>;
  private closed = false;

  private constructor(
    private readonly pool: Pool,
    readonly location: string,
    limits: CommitLimits,
  ) {
    this.group = new GroupCommit((rows) => this.insert(rows), limits, recordBytes);
  }

  /** Connects and migrates; throws an AuditLogError saying where and why not. */
  static async open(options: PostgresAuditOptions): Promise<PostgresAuditLog> {
    const location = redactedUrl(options.url, 'DATABASE_URL');
    const limits = { ...DEFAULT_COMMIT_LIMITS, ...options.limits };
    let pool: Pool | undefined;
    try {
      pool = new Pool({
        connectionString: options.url,
        max: options.poolSize,
        connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
        application_name: 'advsieve',
        statement_timeout: limits.timeoutMs,
        // A transaction left open by a client that went quiet releases its locks.
        idle_in_transaction_session_timeout: limits.timeoutMs + QUERY_TIMEOUT_GRACE_MS,
        keepAlive: true,
        keepAliveInitialDelayMillis: 10_000,
      });
      // An idle connection that breaks (the server restarts) is dropped from the pool; without a
      // listener the pool's 'error' event would end the process.
      pool.on('error', (err) => logger.warn({ err }, 'audit log: an idle PostgreSQL connection failed'));
      await migrate(pool, options.migrations ?? MIGRATIONS);
      return new PostgresAuditLog(pool, location, limits);
    } catch (err) {
      await pool?.end().catch(() => undefined);
      if (err instanceof AuditLogError) throw err;
      throw new AuditLogError(`audit log: cannot use PostgreSQL at ${location} (DATABASE_URL): ${describe(err)}`, {
        cause: err,
      });
    }
  }

  record(rows: readonly AuditRecord[], options?: RecordOptions): Promise<void> {
    if (this.closed) return Promise.reject(new AuditLogError('the audit log is closed'));
    return this.group.add(rows, options?.deadline);
  }

  /** A query that gives up on the client side too, for a connection that no longer answers. */
  private query(config: QueryConfig) {
    return this.pool.query(this.timed(config));
  }

  /** pg reads a query's own `query_timeout` (its types do not declare it). */
  private timed(config: QueryConfig): QueryConfig {
    return Object.assign({}, config, { query_timeout: this.group.limits.timeoutMs + QUERY_TIMEOUT_GRACE_MS });
  }

  private async insert(rows: readonly AuditRecord[]): Promise<void> {
    const statements: QueryConfig[] = [];
    for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT)
      statements.push(insertStatement(rows.slice(i, i + ROWS_PER_STATEMENT)));
    try {
      await this.insertStatements(statements);
    } catch (err) {
      if (ROW_ERROR.test(String((err as { code?: unknown }).code))) throw err;
      throw new GroupWriteError(`PostgreSQL: ${describe(err)}`, { cause: err });
    }
  }

  private async insertStatements(statements: readonly QueryConfig[]): Promise<void> {
    if (statements.length === 1) {
      await this.query(statements[0]);
      return;
    }
    const client = await this.pool.connect();
    let failed: Error | undefined;
    try {
      await client.query(this.timed({ text: 'BEGIN' }));
      for (const s of statements) await client.query(this.timed(s));
      await client.query(this.timed({ text: 'COMMIT' }));
    } catch (err) {
      failed = err as Error;
      await client.query(this.timed({ text: 'ROLLBACK' })).catch(() => undefined);
      throw err;
    } finally {
      client.release(failed); // a connection that failed mid-transaction is dropped, not reused
    }
  }

  async screenings({ filter, first, afterId }: ScreeningQuery): Promise<ScreeningPage> {
    const where = whereClause(filter, afterId, 'postgres');
    const { rows } = await this.query({
      text: `SELECT * FROM screenings ${where.sql} ORDER BY id DESC LIMIT $${where.params.length + 1}`,
      values: [...where.params, first + 1],
    });
    return { rows: rows.slice(0, first).map(recordOf), hasNextPage: rows.length > first };
  }

  /** Bounded like SQLite's (the same answer from both backends), and within the statement timeout. */
  async count(filter: ScreeningFilter, limit = COUNT_LIMIT): Promise<number> {
    const where = whereClause(filter, undefined, 'postgres');
    const { rows } = await this.query({
      text: `SELECT count(*) AS n FROM (SELECT 1 FROM screenings ${where.sql} LIMIT $${where.params.length + 1}) AS matching`,
      values: [...where.params, limit],
    });
    return Number((rows[0] as { n: string }).n);
  }

  /** In chunks, each a short statement: one DELETE of a large backlog would run into the statement timeout. */
  async prune(before: Date): Promise<number> {
    let total = 0;
    for (;;) {
      if (this.closed) return total;
      const result = await this.query({
        text: 'DELETE FROM screenings WHERE id IN (SELECT id FROM screenings WHERE time < $1 LIMIT $2)',
        values: [before, PRUNE_CHUNK],
      });
      total += result.rowCount ?? 0;
      if ((result.rowCount ?? 0) < PRUNE_CHUNK) return total;
    }
  }

  /** Capped: the last writes get the audit timeout, and so do the connections to close. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const capMs = this.group.limits.timeoutMs;
    await this.group.drain(capMs);
    if (!(await settledWithin(this.pool.end(), capMs + QUERY_TIMEOUT_GRACE_MS)))
      logger.warn(`audit log: PostgreSQL connections still busy ${capMs} ms after closing; left to the process's exit`);
  }

  /** Versions applied, in order (for tests and diagnostics). */
  async appliedVersions(): Promise<number[]> {
    const { rows } = await this.pool.query('SELECT version FROM schema_migrations ORDER BY version');
    return rows.map((r: { version: number }) => r.version);
  }
}

function insertStatement(rows: readonly AuditRecord[]): QueryConfig {
  const values: unknown[] = [];
  const tuples = rows.map((r) => {
    const start = values.length;
    values.push(...rowValues(r, 'postgres'));
    return `(${COLUMNS.map((_, j) => `$${start + j + 1}`).join(', ')})`;
  });
  // A row whose idempotency key is there already is a retry's, recorded before (src/audit/columns.ts).
  return {
    text: `INSERT INTO screenings (${COLUMNS.join(', ')}) VALUES ${tuples.join(', ')} ON CONFLICT DO NOTHING`,
    values,
  };
}

async function migrate(pool: Pool, migrations: readonly Migration[]): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // A migration may rewrite or index a large table: no statement timeout for it (its own transaction only).
    await client.query('SET LOCAL statement_timeout = 0');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query(SCHEMA_MIGRATIONS_TABLE.postgres);
    const { rows } = await client.query('SELECT version FROM schema_migrations');
    for (const m of pendingMigrations(
      rows.map((r: { version: number }) => r.version),
      migrations,
    )) {
      await client.query(m.sql.postgres);
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** Node's connection errors to localhost are AggregateErrors with an empty message (IPv6 and IPv4 tried). */
function describe(err: unknown): string {
  const e = err as { message?: string; code?: string; errors?: Array<{ message?: string }> };
  return e.message || e.errors?.[0]?.message || e.code || String(err);
}
