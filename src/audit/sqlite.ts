/**
 * The audit log in a local SQLite file (better-sqlite3), the default backend.
 *
 * Durability: the file is in WAL mode, and ADVSIEVE_AUDIT_SYNC says how far a commit must have
 * gone before `record` resolves:
 * - `full` (the default): to the disk. The WAL file is fdatasync'ed after each commit, so an
 *   acknowledged verdict survives a killed process, a kernel panic and a power cut;
 * - `normal`: to the OS. A commit is written to the WAL (into the page cache) but not synced; it
 *   survives the process being killed (kill -9, an OOM kill: the kernel still writes the pages out)
 *   but the last commits may be lost if the machine itself goes down.
 * `full` is the default because an audit log that can lose acknowledged verdicts when the host
 * fails is not one; group commit (src/audit/groupCommit.ts) pays the sync once per group.
 *
 * Why `full` is not SQLite's own synchronous=FULL: better-sqlite3 is synchronous, so SQLite's fsync
 * would block the event loop for its whole duration (0.2 to 3 ms per commit on the development
 * machine's disk) — every request in the process waits. Instead the connection runs at
 * synchronous=NORMAL and the WAL file is fdatasync'ed through libuv's thread pool; the group's
 * promises resolve after that, while the event loop serves other requests. The result on disk is
 * the same as FULL's: every frame of the commit is in the WAL, and fdatasync makes it stable
 * (checkpoints sync the WAL before and the database after, at NORMAL too). Where WAL mode is
 * unavailable the connection falls back to SQLite's synchronous=FULL. What SQLite's FULL would also
 * do and fdatasync on the WAL does not — sync the directory once the WAL (and a new database file)
 * is created, so that their entries survive a power cut — is done once when the log opens.
 *
 * Time: a commit's fdatasync that never returns (a dead network disk) fails its records at
 * ADVSIEVE_AUDIT_TIMEOUT_MS (src/audit/groupCommit.ts). The INSERTs themselves are synchronous, and
 * so is SQLite's wait for another process's write lock (the busy timeout, capped by the audit timeout).
 *
 * One file belongs to one service instance; instances that share a log need PostgreSQL (the busy
 * timeout only covers a short overlap, e.g. a CLI reading the file while the service writes).
 */
import Database from 'better-sqlite3';
import * as fs from 'fs';
import * as path from 'path';
import { promisify } from 'util';
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
import { CommitLimits, DEFAULT_COMMIT_LIMITS, GroupCommit, GroupWriteError } from './groupCommit';
import { Migration, MIGRATIONS, pendingMigrations, SCHEMA_MIGRATIONS_TABLE } from './migrations';

export type SqliteSync = 'full' | 'normal';

const fdatasync = promisify(fs.fdatasync);

export interface SqliteAuditOptions {
  readonly file: string;
  readonly sync: SqliteSync;
  /** How long a write waits for another connection's lock before failing (ms; at most the audit timeout). */
  readonly busyTimeoutMs?: number;
  /** Time limits and bounds of the group commit; the defaults otherwise. */
  readonly limits?: Partial<CommitLimits>;
  /** For tests of the migration machinery; the real list otherwise. */
  readonly migrations?: readonly Migration[];
  /**
   * With `full`, who syncs: 'thread-pool' (the default, see above), or 'sqlite' — SQLite's own
   * synchronous=FULL, on the main thread (kept for `npm run bench:audit` to compare).
   */
  readonly fsync?: 'thread-pool' | 'sqlite';
}

/** Rows deleted per statement when pruning, with a turn of the event loop between statements. */
const PRUNE_CHUNK = 5000;

/**
 * SQLite result codes that say the store failed, not one record's values (a busy lock, I/O, a full
 * disk): the group is then not retried record by record (src/audit/groupCommit.ts).
 */
const STORE_FAILURE =
  /^SQLITE_(BUSY|LOCKED|IOERR|FULL|READONLY|CANTOPEN|CORRUPT|NOTADB|PERM|NOMEM|INTERRUPT|PROTOCOL|NOLFS|AUTH)/;

export class SqliteAuditLog implements AuditLog {
  readonly kind = 'sqlite';
  private readonly group: GroupCommit<AuditRecord>;
  private readonly insertAll: (rows: readonly AuditRecord[]) => void;
  /** The WAL file, opened for fdatasync (any descriptor of a file syncs all of its data). */
  private walFd: number | undefined;
  /** The fdatasync that failed: nothing is acknowledged after it (see commit). */
  private syncFailure: Error | undefined;
  private closed = false;

  private constructor(
    private readonly db: Database.Database,
    readonly location: string,
    private readonly syncWal: boolean,
    limits: Partial<CommitLimits>,
  ) {
    const insert = db.prepare(
      `INSERT INTO screenings (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')}) ON CONFLICT DO NOTHING`,
    );
    this.insertAll = db.transaction((rows: readonly AuditRecord[]) => {
      for (const r of rows) insert.run(rowValues(r, 'sqlite'));
    });
    this.group = new GroupCommit((rows) => this.commit(rows), limits, recordBytes);
    if (syncWal) this.syncEntries();
  }

  private async commit(rows: readonly AuditRecord[]): Promise<void> {
    if (this.syncFailure)
      throw new GroupWriteError(
        `the audit log's WAL could not be synced (${this.syncFailure.message}); restart the service`,
      );
    try {
      this.insertAll(rows);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && STORE_FAILURE.test(code))
        throw new GroupWriteError(`SQLite: ${(err as Error).message}`, { cause: err });
      throw err; // about these rows' values: retried record by record
    }
    if (!this.syncWal) return;
    try {
      if (this.walFd === undefined) this.syncEntries();
      await fdatasync(this.walFd!);
    } catch (err) {
      // After a failed fsync the page cache cannot be trusted: a later sync may "succeed" over pages
      // the kernel dropped, and WAL recovery stops at the first bad frame, so a later commit could be
      // acknowledged and still lost. Like PostgreSQL, which stops at a failed fsync, nothing more is
      // acknowledged until a restart recovers the WAL from what is really on disk.
      this.syncFailure = err as Error;
      logger.fatal(
        { err },
        'audit log: fdatasync of the WAL failed; no verdict is recorded until the service restarts',
      );
      throw new GroupWriteError(`fdatasync of the audit log's WAL failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Opens the WAL for fdatasync and makes the names durable: the database file synced, and its
   * directory, whose entries for the database and the WAL a power cut could otherwise lose (SQLite
   * syncs the directory itself only at its own synchronous=FULL). Once: SQLite keeps the WAL (same
   * inode) while we are connected, and the WAL exists once the database was read or written.
   */
  private syncEntries(): void {
    const wal = `${this.location}-wal`;
    if (!fs.existsSync(wal)) return; // created by the first commit, which calls this again
    this.walFd = fs.openSync(wal, 'r');
    for (const name of [this.location, path.dirname(this.location)]) {
      const fd = fs.openSync(name, 'r');
      try {
        fs.fsyncSync(fd);
      } catch (err) {
        // Some file systems cannot sync a directory (EINVAL): nothing more can be done there.
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      } finally {
        fs.closeSync(fd);
      }
    }
  }

  /** Opens (creating the file and its directory) and migrates; throws an AuditLogError saying why not. */
  static open(options: SqliteAuditOptions): SqliteAuditLog {
    const file = path.resolve(options.file);
    let db: Database.Database | undefined;
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const limits = { ...DEFAULT_COMMIT_LIMITS, ...options.limits };
      db = new Database(file, { timeout: Math.min(options.busyTimeoutMs ?? 5000, limits.timeoutMs) });
      const wal = db.pragma('journal_mode = WAL', { simple: true }) === 'wal';
      const syncWal = options.sync === 'full' && wal && options.fsync !== 'sqlite';
      db.pragma(`synchronous = ${options.sync === 'full' && !syncWal ? 'FULL' : 'NORMAL'}`);
      migrate(db, options.migrations ?? MIGRATIONS);
      return new SqliteAuditLog(db, file, syncWal, limits);
    } catch (err) {
      db?.close();
      if (err instanceof AuditLogError) throw err;
      throw new AuditLogError(
        `audit log: cannot open the SQLite file ${file} (ADVSIEVE_AUDIT_DB): ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  record(rows: readonly AuditRecord[], options?: RecordOptions): Promise<void> {
    if (this.closed) return Promise.reject(new AuditLogError('the audit log is closed'));
    return this.group.add(rows, options?.deadline);
  }

  async screenings({ filter, first, afterId }: ScreeningQuery): Promise<ScreeningPage> {
    const where = whereClause(filter, afterId, 'sqlite');
    const rows = this.db
      .prepare(`SELECT * FROM screenings ${where.sql} ORDER BY id DESC LIMIT ?`)
      .all(...where.params, first + 1) as Record<string, unknown>[];
    return { rows: rows.slice(0, first).map(recordOf), hasNextPage: rows.length > first };
  }

  /** Bounded: better-sqlite3 runs on the main thread, and a count over the whole log would stall every request. */
  async count(filter: ScreeningFilter, limit = COUNT_LIMIT): Promise<number> {
    const where = whereClause(filter, undefined, 'sqlite');
    const row = this.db
      .prepare(`SELECT count(*) AS n FROM (SELECT 1 FROM screenings ${where.sql} LIMIT ?)`)
      .get(...where.params, limit) as { n: number };
    return row.n;
  }

  /** In chunks, yielding between them: a large first prune must not stall requests for seconds. */
  async prune(before: Date): Promise<number> {
    const remove = this.db.prepare(
      'DELETE FROM screenings WHERE id IN (SELECT id FROM screenings WHERE time < ? ORDER BY id LIMIT ?)',
    );
    let total = 0;
    for (;;) {
      if (this.closed) return total;
      const { changes } = remove.run(before.getTime(), PRUNE_CHUNK);
      total += changes;
      if (changes < PRUNE_CHUNK) return total;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const abandoned = await this.group.drain(this.group.limits.timeoutMs);
    // An fdatasync still running in the thread pool keeps its descriptor (closing it could hand the
    // number to another file mid-sync); the process is on its way out.
    if (this.walFd !== undefined && abandoned.writing.records === 0) fs.closeSync(this.walFd);
    this.db.close();
  }

  /** Versions applied, in order (for tests and diagnostics). */
  appliedVersions(): number[] {
    return (
      this.db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[]
    ).map((r) => r.version);
  }
}

function migrate(db: Database.Database, migrations: readonly Migration[]): void {
  db.exec(SCHEMA_MIGRATIONS_TABLE.sqlite);
  // IMMEDIATE takes the write lock before reading the applied versions: two processes opening
  // the same new file cannot both decide to apply the same migration.
  const apply = db.transaction(() => {
    const applied = (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map(
      (r) => r.version,
    );
    for (const m of pendingMigrations(applied, migrations)) {
      db.exec(m.sql.sqlite);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        m.version,
        m.name,
        new Date().toISOString(),
      );
    }
  });
  apply.immediate();
}
