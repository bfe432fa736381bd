/**
 * The audit log's schema, as versioned migrations: an ordered list, each entry with its SQL per
 * dialect. A database records the versions applied in `schema_migrations` (version, name,
 * applied_at); opening the log applies the missing ones in order, in one transaction with their
 * rows in `schema_migrations` (DDL is transactional in both SQLite and PostgreSQL), so a crash
 * mid-way leaves the database as it was. Two instances starting at once are serialised: SQLite by
 * taking the write lock first (BEGIN IMMEDIATE), PostgreSQL by an advisory lock.
 * A database at a version this code does not know (written by a newer advsieve) is refused rather
 * than written with the wrong columns. Never edit an entry once released: add one.
 */
import { AuditLogError } from './auditLog';

export type Dialect = 'sqlite' | 'postgres';

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: Readonly<Record<Dialect, string>>;
}

export const SCHEMA_MIGRATIONS_TABLE: Readonly<Record<Dialect, string>> = {
  sqlite: `CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
  )`,
  postgres: `CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
  )`,
};

/*
 * SQLite keeps `time` as integer milliseconds since the epoch (UTC): exact, sortable, and compared
 * with an index without parsing; PostgreSQL has timestamptz. AUTOINCREMENT (SQLite) and an identity
 * column (PostgreSQL) never reuse an id, even after the newest rows are deleted, so a cursor handed
 * out before a prune still means the same place.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'screenings',
    sql: {
      sqlite: `
        CREATE TABLE screenings (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          time INTEGER NOT NULL,
          request_id TEXT NOT NULL,
          key_id TEXT,
          operation TEXT NOT NULL,
          image_index INTEGER NOT NULL,
          sha256 TEXT,
          byte_size INTEGER,
          class_index INTEGER,
          label TEXT,
          confidence REAL,
          adversarial INTEGER,
          score REAL,
          threshold REAL,
          target_fpr REAL,
          detectors TEXT,
          defense_class_index INTEGER,
          defense_label TEXT,
          defense_confidence REAL,
          error_code TEXT,
          model_id TEXT NOT NULL,
          model_sha256 TEXT NOT NULL,
          calibration_sha256 TEXT NOT NULL,
          calibration_created_at TEXT NOT NULL,
          image BLOB
        );
        CREATE INDEX screenings_time ON screenings (time);
        CREATE INDEX screenings_sha256 ON screenings (sha256);
        CREATE INDEX screenings_adversarial ON screenings (adversarial, id);`,
      postgres: `
        CREATE TABLE screenings (
          id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
          time TIMESTAMPTZ NOT NULL,
          request_id TEXT NOT NULL,
          key_id TEXT,
          operation TEXT NOT NULL,
          image_index INTEGER NOT NULL,
          sha256 TEXT,
          byte_size INTEGER,
          class_index INTEGER,
          label TEXT,
          confidence DOUBLE PRECISION,
          adversarial BOOLEAN,
          score DOUBLE PRECISION,
          threshold DOUBLE PRECISION,
          target_fpr DOUBLE PRECISION,
          detectors JSONB,
          defense_class_index INTEGER,
          defense_label TEXT,
          defense_confidence DOUBLE PRECISION,
          error_code TEXT,
          model_id TEXT NOT NULL,
          model_sha256 TEXT NOT NULL,
          calibration_sha256 TEXT NOT NULL,
          calibration_created_at TEXT NOT NULL,
          image BYTEA
        );
        CREATE INDEX screenings_time ON screenings (time);
        CREATE INDEX screenings_sha256 ON screenings (sha256);
        CREATE INDEX screenings_adversarial ON screenings (adversarial, id);`,
    },
  },
  /*
   * Version 2: `request_id` is now the server's UUID, and the client's own `x-request-id` is kept
   * beside it (rows written before have it null: their request_id may be the client's). The
   * `operation` column was TEXT without a constraint in both dialects, so the fields newly audited
   * (classify, defend, spectrum, trajectory) need no change to it; the index serves the admin
   * query's operation filter.
   */
  {
    version: 2,
    name: 'client_request_id_and_operation_index',
    sql: {
      sqlite: `
        ALTER TABLE screenings ADD COLUMN client_request_id TEXT;
        CREATE INDEX screenings_operation ON screenings (operation, id);`,
      postgres: `
        ALTER TABLE screenings ADD COLUMN client_request_id TEXT;
        CREATE INDEX screenings_operation ON screenings (operation, id);`,
    },
  },
  /*
   * Version 3: a retried request is recorded once. A client that retries a request whose answer
   * was lost (a replica killed after its commit, a load balancer's retry) sends the same
   * `x-request-id`; the rows of the retry carry the same idempotency key as the first attempt's
   * (src/audit/columns.ts) and are not inserted again. Null — distinct from every other row in both
   * dialects — when the client sent no request id, and for the rows written before this version,
   * so that rows already in the log can never make the index fail to build.
   */
  {
    version: 3,
    name: 'idempotency_key',
    sql: {
      sqlite: `
        ALTER TABLE screenings ADD COLUMN idempotency_key TEXT;
        CREATE UNIQUE INDEX screenings_idempotency_key ON screenings (idempotency_key);`,
      postgres: `
        ALTER TABLE screenings ADD COLUMN idempotency_key TEXT;
        CREATE UNIQUE INDEX screenings_idempotency_key ON screenings (idempotency_key);`,
    },
  },
  /*
   * Version 4: bulk screening jobs (src/jobs/). A job's verdict names its job; the unique index
   * makes a batch rerun after a stalled consumer (BullMQ's recovery) insert nothing twice: every
   * INSERT says ON CONFLICT DO NOTHING, and only a job's rows can conflict (NULLs never do, and the
   * partial index leaves the request rows out of it entirely).
   */
  {
    version: 4,
    name: 'job_id',
    sql: {
      sqlite: `
        ALTER TABLE screenings ADD COLUMN job_id TEXT;
        CREATE UNIQUE INDEX screenings_job_image ON screenings (job_id, image_index) WHERE job_id IS NOT NULL;`,
      postgres: `
        ALTER TABLE screenings ADD COLUMN job_id TEXT;
        CREATE UNIQUE INDEX screenings_job_image ON screenings (job_id, image_index) WHERE job_id IS NOT NULL;`,
    },
  },
];

/** The migrations still to apply to a database that has `applied`, in order; checks the list itself too. */
export function pendingMigrations(
  applied: readonly number[],
  migrations: readonly Migration[] = MIGRATIONS,
): Migration[] {
  migrations.forEach((m, i) => {
    if (i > 0 && m.version <= migrations[i - 1].version)
      throw new Error(`audit migrations out of order: version ${m.version} after ${migrations[i - 1].version}`);
  });
  const known = new Set(migrations.map((m) => m.version));
  const unknown = applied.filter((v) => !known.has(v));
  if (unknown.length) {
    const latest = migrations[migrations.length - 1]?.version ?? 0;
    throw new AuditLogError(
      `the audit database has schema version ${Math.max(...unknown)}, which this advsieve does not know ` +
        `(its latest is ${latest}): it was written by a newer advsieve; upgrade, or point this one at another database`,
    );
  }
  const done = new Set(applied);
  return migrations.filter((m) => !done.has(m.version));
}
