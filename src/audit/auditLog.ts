/**
 * The audit log: one row per screened image, written before the verdict is sent, so that every
 * verdict a client was given can be found again (who asked, which image, what every detector said,
 * with which model and calibration). Two backends behind one interface — SQLite in a local file
 * (src/audit/sqlite.ts) and PostgreSQL when DATABASE_URL is set (src/audit/postgres.ts) — and a
 * no-op one for ADVSIEVE_AUDIT=off.
 */

/**
 * The GraphQL fields whose answers are recorded: `screen`'s verdicts, `attack`'s screening of the
 * adversarial image it made, and every field that gives out a prediction or per-layer distances
 * without screening (the `oracle` scope's), so that an adaptive attack tuned against them leaves a
 * trace. `spectrum` gives out no prediction: its rows say which image was analysed, by whom.
 */
export const AUDITED_OPERATIONS = [
  'screen',
  'attack',
  'classify',
  'defend',
  'spectrum',
  'trajectory',
  'explain',
  'compare',
] as const;
export type AuditedOperation = (typeof AUDITED_OPERATIONS)[number];

/** One image's verdict as recorded. Every field that may be missing for a failed image is nullable. */
export interface AuditRecord {
  /** When the verdict was made. */
  readonly time: Date;
  /** The server's id of the request (a UUID, unique). */
  readonly requestId: string;
  /** The client's own `x-request-id`, as given (null when it sent none, or not a sane one). */
  readonly clientRequestId: string | null;
  /** The API key's id; null when the gateway has no keys configured. */
  readonly keyId: string | null;
  /** The GraphQL field that gave the answer (AUDITED_OPERATIONS). */
  readonly operation: AuditedOperation;
  /** Position of the image in the request's list. */
  readonly imageIndex: number;
  /** SHA-256 (hex) of the file's bytes; null when they could not be read (invalid base64). */
  readonly sha256: string | null;
  readonly byteSize: number | null;
  readonly classIndex: number | null;
  readonly label: string | null;
  readonly confidence: number | null;
  readonly adversarial: boolean | null;
  /** The combined score, its threshold, and the false-positive rate the thresholds were read at. */
  readonly score: number | null;
  readonly threshold: number | null;
  readonly targetFpr: number | null;
  readonly detectors: ReadonlyArray<AuditDetectorScore> | null;
  /** The low-pass defense's prediction, when the request asked for it (and every `defend` row). */
  readonly defenseClassIndex: number | null;
  readonly defenseLabel: string | null;
  readonly defenseConfidence: number | null;
  /** The image's own error code when it could not be screened (the verdict fields are then null). */
  readonly errorCode: string | null;
  readonly modelId: string;
  readonly modelSha256: string;
  /** SHA-256 of the calibration file's bytes (calibration.json carries no version of its own) and its date. */
  readonly calibrationSha256: string;
  readonly calibrationCreatedAt: string;
  /** The image file itself, only with ADVSIEVE_AUDIT_STORE_IMAGES=1. */
  readonly image: Buffer | null;
  /**
   * The screening job the verdict belongs to (src/jobs/), null for a request's own images. A job's
   * image has one row whatever its batch's reruns: (job_id, image_index) is unique, and a rerun's
   * insert of the same image is ignored (migration 4).
   */
  readonly jobId: string | null;
}

export interface AuditDetectorScore {
  readonly name: string;
  readonly score: number;
  readonly threshold: number;
  readonly flagged: boolean;
}

/** What a record is taken to occupy in memory while it waits for its commit: the fields, and the image if kept. */
export function recordBytes(r: AuditRecord): number {
  return RECORD_FIELDS_BYTES + (r.image?.length ?? 0);
}

/** The fields of a record in memory, with every detector's score, rounded up (≈ its 1.1 KiB on disk with indexes). */
const RECORD_FIELDS_BYTES = 2048;

/** A stored record: its id orders the log (ids grow with insertion). */
export interface AuditRow extends AuditRecord {
  readonly id: number;
}

export interface ScreeningFilter {
  /** Only verdicts with (true) or without (false) the adversarial flag; failed images have neither. */
  readonly flagged?: boolean;
  /** time ≥ since. */
  readonly since?: Date;
  /** time < until. */
  readonly until?: Date;
  readonly sha256?: string;
  /** Only rows of this field. */
  readonly operation?: AuditedOperation;
  /** Only rows of requests made with this API key id. */
  readonly keyId?: string;
  /** Only rows of this model id. */
  readonly modelId?: string;
  /** Only rows of this screening job. */
  readonly jobId?: string;
}

export interface ScreeningQuery {
  readonly filter: ScreeningFilter;
  /** Rows to return, at most. */
  readonly first: number;
  /** Only rows older than this id (the previous page's last row): newest first, by id. */
  readonly afterId?: number;
}

export interface ScreeningPage {
  readonly rows: AuditRow[];
  /** More rows match beyond this page. */
  readonly hasNextPage: boolean;
}

export type AuditBackend = 'sqlite' | 'postgres' | 'off';

export interface RecordOptions {
  /**
   * The request's deadline (a performance.now() time): the records fail once it passes uncommitted,
   * when that comes before the audit timeout (src/audit/groupCommit.ts).
   */
  readonly deadline?: number;
}

/** totalCount counts this many matching rows at most (see `count`). */
export const COUNT_LIMIT = 100_000;

export interface AuditLog {
  readonly kind: AuditBackend;
  /** Where the log lives, for the start-up log line (a file, or the database URL without password). */
  readonly location: string;
  /**
   * Stores the records; resolves only once they are durable (committed), rejects if they are not —
   * or not in time (ADVSIEVE_AUDIT_TIMEOUT_MS, the request's deadline), or too much is waiting already.
   */
  record(rows: readonly AuditRecord[], options?: RecordOptions): Promise<void>;
  /** Newest first; filtered; one page. */
  screenings(query: ScreeningQuery): Promise<ScreeningPage>;
  /**
   * Rows matching the filter, all pages together, counted up to `limit` (default COUNT_LIMIT): a
   * count over the whole log would scan all of it — for SQLite on the main thread, stalling every
   * request — so a larger count answers `limit`.
   */
  count(filter: ScreeningFilter, limit?: number): Promise<number>;
  /** Deletes the rows older than `before`; returns how many. */
  prune(before: Date): Promise<number>;
  /**
   * Waits for the records being written, at most ADVSIEVE_AUDIT_TIMEOUT_MS (the records left then
   * fail, and the log says how many), then closes the connection(s).
   */
  close(): Promise<void>;
}

/** A start-up failure of the audit log: says which backend, where, and why. */
export class AuditLogError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AuditLogError';
  }
}

/** ADVSIEVE_AUDIT=off: nothing is recorded, and the screenings query says so. */
export class DisabledAuditLog implements AuditLog {
  readonly kind = 'off';
  readonly location = 'off';

  async record(): Promise<void> {}

  async screenings(): Promise<ScreeningPage> {
    throw new AuditLogError('the audit log is off (ADVSIEVE_AUDIT=off)');
  }

  async count(): Promise<number> {
    throw new AuditLogError('the audit log is off (ADVSIEVE_AUDIT=off)');
  }

  async prune(): Promise<number> {
    return 0;
  }

  async close(): Promise<void> {}
}
