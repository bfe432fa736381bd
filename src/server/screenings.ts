/**
 * The admin `screenings` query over the audit log: arguments checked, the cursor decoded, rows
 * mapped to the schema's types. Pages are newest first; a cursor is the last row's id, so rows that
 * arrive while a client pages through the log (they get higher ids) neither shift nor repeat what it
 * reads next.
 */
import { AUDITED_OPERATIONS, AuditedOperation, AuditRow, COUNT_LIMIT, ScreeningFilter } from '../audit/auditLog';
import type { ScreeningFilter as ScreeningFilterInput } from '../schema/screening-filter.input';
import type { ScreeningConnection } from '../schema/screening-connection.type';
import type { Screening } from '../schema/screening.type';
import { logger } from '../util/logger';
import { auditUnavailable, badUserInput } from '../request/errors';
import type { ApiContext } from './operations';

export const SCREENINGS_DEFAULT_FIRST = 50;
export const SCREENINGS_MAX_FIRST = 500;

const SHA256 = /^[0-9a-f]{64}$/;
const ID = /^[1-9][0-9]{0,15}$/;

/** Opaque to clients: base64url of the row's id. */
export function encodeCursor(id: number): string {
  return Buffer.from(String(id)).toString('base64url');
}

/** The id a cursor stands for; undefined when it is not one this service made. */
export function decodeCursor(cursor: string): number | undefined {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!ID.test(text) || encodeCursor(Number(text)) !== cursor) return undefined;
  return Number(text);
}

function checkFilter(input: ScreeningFilterInput | null | undefined): ScreeningFilter {
  const sha256 = input?.sha256?.toLowerCase();
  if (sha256 !== undefined && !SHA256.test(sha256))
    throw badUserInput(`filter.sha256 must be 64 hexadecimal digits, got '${input!.sha256}'`, 'filter');
  const operation = input?.operation ?? undefined;
  if (operation !== undefined && !(AUDITED_OPERATIONS as readonly string[]).includes(operation))
    throw badUserInput(`filter.operation must be one of ${AUDITED_OPERATIONS.join(', ')}`, 'filter');
  // The fields taken as they are (GraphQL's null: no condition).
  const plain = Object.fromEntries(PLAIN_FILTER_FIELDS.map((field) => [field, input?.[field] ?? undefined])) as Pick<
    ScreeningFilter,
    (typeof PLAIN_FILTER_FIELDS)[number]
  >;
  return { ...plain, operation: operation as AuditedOperation | undefined, sha256 };
}

const PLAIN_FILTER_FIELDS = ['flagged', 'since', 'until', 'keyId', 'modelId', 'jobId'] as const;

export async function screenings(
  ctx: ApiContext,
  filterInput: ScreeningFilterInput | null | undefined,
  first: number | null | undefined,
  after: string | null | undefined,
): Promise<ScreeningConnection> {
  const n = first ?? SCREENINGS_DEFAULT_FIRST;
  if (!(Number.isInteger(n) && n >= 1 && n <= SCREENINGS_MAX_FIRST))
    throw badUserInput(`first must be an integer in [1, ${SCREENINGS_MAX_FIRST}], got ${n}`, 'first');
  const afterId = after == null ? undefined : decodeCursor(after);
  if (after != null && afterId === undefined)
    throw badUserInput(`after: '${after}' is not a cursor from screenings`, 'after');
  const filter = checkFilter(filterInput);
  const log = ctx.service.audit;
  if (log.kind === 'off') throw auditUnavailable('the audit log is off (ADVSIEVE_AUDIT=off)');
  const page = await readLog(() => log.screenings({ filter, first: n, afterId }));
  const edges = page.rows.map((row) => ({ cursor: encodeCursor(row.id), node: screeningOf(row) }));
  return {
    edges,
    pageInfo: { hasNextPage: page.hasNextPage, endCursor: edges.length ? edges[edges.length - 1].cursor : null },
    filter,
    totalCount: 0, // resolved only when asked for: totalCountOf
  };
}

/**
 * Counts at most COUNT_LIMIT rows: an exact count scans every matching row, over a log of months
 * (and, with SQLite, on the thread that serves every request), for a figure an admin rarely needs
 * beyond "more than 100 000"; a time range or another filter narrows it to an exact one.
 */
export function totalCountOf(ctx: ApiContext, connection: ScreeningConnection): Promise<number> {
  return readLog(() => ctx.service.audit.count(connection.filter, COUNT_LIMIT));
}

async function readLog<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    logger.error({ err }, 'audit log: reading failed');
    throw auditUnavailable('the audit log cannot be read now; retry later');
  }
}

function screeningOf(r: AuditRow): Screening {
  const prediction = (classIndex: number | null, label: string | null, confidence: number | null) =>
    classIndex === null ? null : { classIndex, label: label ?? '', confidence: confidence ?? 0 };
  return {
    id: String(r.id),
    time: r.time,
    requestId: r.requestId,
    clientRequestId: r.clientRequestId,
    keyId: r.keyId,
    operation: r.operation,
    index: r.imageIndex,
    jobId: r.jobId,
    sha256: r.sha256,
    byteSize: r.byteSize,
    prediction: prediction(r.classIndex, r.label, r.confidence),
    adversarial: r.adversarial,
    score: r.score,
    threshold: r.threshold,
    targetFpr: r.targetFpr,
    detectors: r.detectors ? r.detectors.map((d) => ({ ...d })) : null,
    defensePrediction: prediction(r.defenseClassIndex, r.defenseLabel, r.defenseConfidence),
    errorCode: r.errorCode,
    modelId: r.modelId,
    modelSha256: r.modelSha256,
    calibrationSha256: r.calibrationSha256,
    calibrationCreatedAt: r.calibrationCreatedAt,
    image: r.image ? r.image.toString('base64') : null,
  };
}
