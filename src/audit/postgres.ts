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
 * Ids come from an identity column: within one instance they follow commit order (one commit at a
 * time); with several instances writing, a row may commit after a row with a higher id, so a client
 * paging newest-first at that very moment can miss it (it is there on the next read from the top).
 */
import { Pool } from 'pg';
import { logger } from '../util/logger';
import { AuditLog, AuditLogError, AuditRecord, ScreeningFilter, ScreeningPage, ScreeningQuery } from './auditLog';
import { COLUMNS, recordOf, rowValues, whereClause } from './columns';
import { GroupCommit } from './groupCommit';
import { Migration, MIGRATIONS, pendingMigrations, SCHEMA_MIGRATIONS_TABLE } from './migrations';

export interface PostgresAuditOptions {
  readonly url: string;
  /** Connections at most (the service writes one group at a time; reads and pruning use the others). */
  readonly poolSize: number;
  /** Longest to wait for a connection, at start and later (ms). */
  readonly connectTimeoutMs?: number;
  /** For tests of the migration machinery; the real list otherwise. */
  readonly migrations?: readonly Migration[];
}

/** Rows per INSERT statement: 24 columns × 1000 stays far below PostgreSQL's 65 535 parameters. */
const ROWS_PER_STATEMENT = 1000;

/** pg_advisory_xact_lock key held while migrating ('advs' in ASCII): instances starting together take turns. */
const MIGRATION_LOCK = 0x61647673;

export class PostgresAuditLog implements AuditLog {
  readonly kind = 'postgres';
  private readonly group: GroupCommit<AuditRecord>;
  private closed = false;

  private constructor(
    private readonly pool: Pool,
    readonly location: string,
  ) {
    this.group = new GroupCommit((rows) => this.insert(rows));
  }

  /** Connects and migrates; throws an AuditLogError saying where and why not. */
  static async open(options: PostgresAuditOptions): Promise<PostgresAuditLog> {
    const location = redactedUrl(options.url);
    let pool: Pool | undefined;
    try {
      pool = new Pool({
        connectionString: options.url,
        max: options.poolSize,
        connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
        application_name: 'advsieve',
      });
      // An idle connection that breaks (the server restarts) is dropped from the pool; without a
      // listener the pool's 'error' event would end the process.
      pool.on('error', (err) => logger.warn({ err }, 'audit log: an idle PostgreSQL connection failed'));
      await migrate(pool, options.migrations ?? MIGRATIONS);
      return new PostgresAuditLog(pool, location);
    } catch (err) {
      await pool?.end().catch(() => undefined);
      if (err instanceof AuditLogError) throw err;
      throw new AuditLogError(`audit log: cannot use PostgreSQL at ${location} (DATABASE_URL): ${describe(err)}`, {
        cause: err,
      });
    }
  }

  record(rows: readonly AuditRecord[]): Promise<void> {
    if (this.closed) return Promise.reject(new AuditLogError('the audit log is closed'));
    return this.group.add(rows);
  }

  private async insert(rows: readonly AuditRecord[]): Promise<void> {
    const statements: Array<{ text: string; values: unknown[] }> = [];
    for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT)
      statements.push(insertStatement(rows.slice(i, i + ROWS_PER_STATEMENT)));
    if (statements.length === 1) {
      await this.pool.query(statements[0]);
      return;
    }
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      for (const s of statements) await client.query(s);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async screenings({ filter, first, afterId }: ScreeningQuery): Promise<ScreeningPage> {
    const where = whereClause(filter, afterId, 'postgres');
    const { rows } = await this.pool.query({
      text: `SELECT * FROM screenings ${where.sql} ORDER BY id DESC LIMIT $${where.params.length + 1}`,
      values: [...where.params, first + 1],
    });
    return { rows: rows.slice(0, first).map(recordOf), hasNextPage: rows.length > first };
  }

  async count(filter: ScreeningFilter): Promise<number> {
    const where = whereClause(filter, undefined, 'postgres');
    const { rows } = await this.pool.query({
      text: `SELECT count(*) AS n FROM screenings ${where.sql}`,
      values: where.params,
    });
    return Number((rows[0] as { n: string }).n);
  }

  async prune(before: Date): Promise<number> {
    const result = await this.pool.query({ text: 'DELETE FROM screenings WHERE time < $1', values: [before] });
    return result.rowCount ?? 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.group.drain();
    await this.pool.end();
  }

  /** Versions applied, in order (for tests and diagnostics). */
  async appliedVersions(): Promise<number[]> {
    const { rows } = await this.pool.query('SELECT version FROM schema_migrations ORDER BY version');
    return rows.map((r: { version: number }) => r.version);
  }
}

function insertStatement(rows: readonly AuditRecord[]): { text: string; values: unknown[] } {
  const values: unknown[] = [];
  const tuples = rows.map((r) => {
    const start = values.length;
    values.push(...rowValues(r, 'postgres'));
    return `(${COLUMNS.map((_, j) => `$${start + j + 1}`).join(', ')})`;
  });
  return { text: `INSERT INTO screenings (${COLUMNS.join(', ')}) VALUES ${tuples.join(', ')}`, values };
}

async function migrate(pool: Pool, migrations: readonly Migration[]): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
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

/** The URL as it may be logged: the password replaced. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(a DATABASE_URL that is not a URL)';
  }
}

/** Node's connection errors to localhost are AggregateErrors with an empty message (IPv6 and IPv4 tried). */
function describe(err: unknown): string {
  const e = err as { message?: string; code?: string; errors?: Array<{ message?: string }> };
  return e.message || e.errors?.[0]?.message || e.code || String(err);
}
