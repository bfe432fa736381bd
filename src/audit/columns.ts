/**
 * The `screenings` table's columns and the conversions between an AuditRecord and a row, per
 * dialect, with the filter's WHERE clause: one place, so that both backends store and read the
 * same thing (the behaviour suite runs against both).
 */
import { createHash } from 'crypto';
import type { AuditDetectorScore, AuditRecord, AuditRow, ScreeningFilter } from './auditLog';
import type { Dialect } from './migrations';

/** Insertion order of the columns (the id is assigned by the database). */
export const COLUMNS = [
  'time',
  'request_id',
  'key_id',
  'operation',
  'image_index',
  'sha256',
  'byte_size',
  'class_index',
  'label',
  'confidence',
  'adversarial',
  'score',
  'threshold',
  'target_fpr',
  'detectors',
  'defense_class_index',
  'defense_label',
  'defense_confidence',
  'error_code',
  'model_id',
  'model_sha256',
  'calibration_sha256',
  'calibration_created_at',
  'image',
  'client_request_id',
  'idempotency_key',
  'job_id',
] as const;

/**
 * The key under which a row is recorded at most once (a unique index; inserts skip a row whose key
 * is there already): the same API key asking the same question — operation, image (its index and
 * bytes), model, calibration, detection target — under the same client request id (`x-request-id`).
 * That is a client's retry of a request whose answer it did not get, judged again, by this replica
 * or another: the verdict is the same, and the log keeps the first one recorded. Null without a
 * client request id: each such row stands on its own, as before.
 */
export function idempotencyKeyOf(r: AuditRecord): string | null {
  if (r.clientRequestId === null) return null;
  const parts = [
    r.keyId ?? '',
    r.clientRequestId,
    r.operation,
    String(r.imageIndex),
    r.sha256 ?? '',
    r.modelSha256,
    r.calibrationSha256,
    r.targetFpr === null ? '' : String(r.targetFpr),
  ];
  return createHash('sha256').update(parts.join('\u0000')).digest('hex');
}

type Value = string | number | boolean | Date | Buffer | null;

/** A record's values in COLUMNS order. */
export function rowValues(r: AuditRecord, dialect: Dialect): Value[] {
  const sqlite = dialect === 'sqlite';
  return [
    sqlite ? r.time.getTime() : r.time,
    r.requestId,
    r.keyId,
    r.operation,
    r.imageIndex,
    r.sha256,
    r.byteSize,
    r.classIndex,
    r.label,
    r.confidence,
    r.adversarial === null ? null : sqlite ? Number(r.adversarial) : r.adversarial,
    r.score,
    r.threshold,
    r.targetFpr,
    r.detectors === null ? null : JSON.stringify(r.detectors),
    r.defenseClassIndex,
    r.defenseLabel,
    r.defenseConfidence,
    r.errorCode,
    r.modelId,
    r.modelSha256,
    r.calibrationSha256,
    r.calibrationCreatedAt,
    r.image,
    r.clientRequestId,
    idempotencyKeyOf(r),
    r.jobId,
  ];
}

/** A row as either driver returns it (SQLite: integers and text; pg: BIGINT as text, JSONB parsed). */
export function recordOf(row: Record<string, unknown>): AuditRow {
  const time = row.time instanceof Date ? row.time : new Date(Number(row.time));
  const detectors =
    row.detectors == null
      ? null
      : ((typeof row.detectors === 'string' ? JSON.parse(row.detectors) : row.detectors) as AuditDetectorScore[]);
  return {
    id: Number(row.id),
    time,
    requestId: row.request_id as string,
    clientRequestId: (row.client_request_id as string | null) ?? null,
    keyId: (row.key_id as string | null) ?? null,
    operation: row.operation as AuditRecord['operation'],
    imageIndex: Number(row.image_index),
    sha256: (row.sha256 as string | null) ?? null,
    byteSize: nullableNumber(row.byte_size),
    classIndex: nullableNumber(row.class_index),
    label: (row.label as string | null) ?? null,
    confidence: nullableNumber(row.confidence),
    adversarial: row.adversarial == null ? null : Boolean(row.adversarial),
    score: nullableNumber(row.score),
    threshold: nullableNumber(row.threshold),
    targetFpr: nullableNumber(row.target_fpr),
    detectors,
    defenseClassIndex: nullableNumber(row.defense_class_index),
    defenseLabel: (row.defense_label as string | null) ?? null,
    defenseConfidence: nullableNumber(row.defense_confidence),
    errorCode: (row.error_code as string | null) ?? null,
    modelId: row.model_id as string,
    modelSha256: row.model_sha256 as string,
    calibrationSha256: row.calibration_sha256 as string,
    calibrationCreatedAt: row.calibration_created_at as string,
    image: (row.image as Buffer | null) ?? null,
    jobId: (row.job_id as string | null) ?? null,
  };
}

function nullableNumber(v: unknown): number | null {
  return v == null ? null : Number(v);
}

/** WHERE clause (with `WHERE`, or empty) and its parameters; `first` is the first $n for pg. */
export function whereClause(
  filter: ScreeningFilter,
  afterId: number | undefined,
  dialect: Dialect,
  first = 1,
): { sql: string; params: Value[] } {
  const sqlite = dialect === 'sqlite';
  const conditions: string[] = [];
  const params: Value[] = [];
  const add = (condition: string, value: Value) => {
    params.push(value);
    conditions.push(condition.replace('?', sqlite ? '?' : `$${first + params.length - 1}`));
  };
  if (filter.flagged !== undefined) add('adversarial = ?', sqlite ? Number(filter.flagged) : filter.flagged);
  if (filter.since) add('time >= ?', sqlite ? filter.since.getTime() : filter.since);
  if (filter.until) add('time < ?', sqlite ? filter.until.getTime() : filter.until);
  if (filter.sha256 !== undefined) add('sha256 = ?', filter.sha256);
  if (filter.operation !== undefined) add('operation = ?', filter.operation);
  if (filter.keyId !== undefined) add('key_id = ?', filter.keyId);
  if (filter.modelId !== undefined) add('model_id = ?', filter.modelId);
  if (filter.jobId !== undefined) add('job_id = ?', filter.jobId);
  if (afterId !== undefined) add('id < ?', afterId);
  return { sql: conditions.length ? `WHERE ${conditions.join(' AND ')}` : '', params };
}
