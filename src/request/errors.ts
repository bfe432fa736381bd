/**
 * Errors as clients see them. Two kinds, kept apart on purpose:
 * - per image (`ImageError` in that image's result): the image could not be read or decoded, or its
 *   inference failed; the request's other images are still answered;
 * - per request (a GraphQL error with `extensions.code`): the request itself is wrong or cannot be
 *   served now, so no part of it is answered. These carry an HTTP status through Apollo's `http`
 *   extension, so proxies and load balancers see 400 / 413 / 503 without reading the body.
 */
import { HeaderMap } from '@apollo/server';
import type { Response } from 'express';
import { GraphQLError, GraphQLFormattedError } from 'graphql';
import { OverloadError } from '../engine/batcher';

/** Codes of request-level errors this service raises (besides Apollo's own, e.g. GRAPHQL_VALIDATION_FAILED). */
export const REQUEST_ERROR_CODES = [
  'BAD_USER_INPUT',
  'BAD_REQUEST',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'OVERLOADED',
  'DEADLINE_EXCEEDED',
  'ATTACKS_DISABLED',
  'UNKNOWN_MODEL',
  'UNAVAILABLE',
  'AUDIT_UNAVAILABLE',
  'INTERNAL_SERVER_ERROR',
  // The gateway's (src/gateway/): keys and scopes, rate limits, query limits, trusted documents.
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'RATE_LIMITED',
  'QUERY_TOO_DEEP',
  'QUERY_TOO_COSTLY',
  'TOO_MANY_ALIASES',
  'TOO_MANY_DIRECTIVES',
  'TOO_MANY_TOKENS',
  'TOO_MANY_OPERATIONS',
  'PERSISTED_QUERY_NOT_ALLOWED',
  // A malformed extensions.persistedQuery (src/gateway/persistedQueries.ts); Apollo's own
  // PERSISTED_QUERY_NOT_FOUND and PERSISTED_QUERY_NOT_SUPPORTED (APQ off) keep their code and 200.
  'PERSISTED_QUERY_INVALID',
  'PERSISTED_QUERY_VERSION_NOT_SUPPORTED',
  'PERSISTED_QUERY_HASH_MISMATCH',
  // Subscriptions (src/gateway/operationTypes.ts).
  'OPERATION_NOT_SUPPORTED',
  // Bulk screening jobs (src/server/jobs.ts): no REDIS_URL, an unknown job, a directory not allowed.
  'JOBS_UNAVAILABLE',
  'JOB_NOT_FOUND',
  'JOB_DIRECTORY_NOT_ALLOWED',
] as const;

/** Codes an image's own `error` may carry. */
export const IMAGE_ERROR_CODES = [
  'UNSUPPORTED_FORMAT',
  'CORRUPT_IMAGE',
  'IMAGE_TOO_LARGE',
  'EMPTY_IMAGE',
  // Decoding bounded (src/images/structure.ts, src/images/decodePool.ts) and views (src/images/decode.ts).
  'IMAGE_TOO_COMPLEX',
  'MULTI_FRAME_IMAGE',
  'DECODE_TIMEOUT',
  'DECODE_FAILED',
  'INVALID_BASE64',
  'INFERENCE_FAILED',
  // A screening job's image (src/jobs/): its file gone or unreadable when its batch ran, or its
  // batch given up after its consumers died under it ADVSIEVE_JOB_MAX_STALLED times.
  'UNREADABLE_FILE',
  'JOB_BATCH_FAILED',
] as const;

export type ImageErrorCode = (typeof IMAGE_ERROR_CODES)[number];

/** What goes into one image's result when that image alone failed. */
export class ImageFailure {
  constructor(
    readonly code: ImageErrorCode,
    readonly message: string,
  ) {}
}

export function requestError(
  code: string,
  message: string,
  status: number,
  extra: Record<string, unknown> = {},
  headers?: Array<[string, string]>,
): GraphQLError {
  return new GraphQLError(message, {
    extensions: { code, ...extra, http: { status, headers: new HeaderMap(headers ?? []) } },
  });
}

/** The Retry-After header for a hint in ms: whole seconds (HTTP's unit), at least 1. */
export function retryAfter(ms: number): [string, string] {
  return ['retry-after', String(Math.max(1, Math.ceil(ms / 1000)))];
}

export function badUserInput(message: string, argumentName?: string): GraphQLError {
  return requestError('BAD_USER_INPUT', message, 400, argumentName ? { argumentName } : {});
}

export function payloadTooLarge(message: string, limit?: { name: string; value: number }): GraphQLError {
  return requestError('PAYLOAD_TOO_LARGE', message, 413, limit ? { limit: limit.name, limitValue: limit.value } : {});
}

/** The engine's queue is full: 503 with Retry-After (whole seconds) and the hint in ms. */
export function overloaded(err: OverloadError): GraphQLError {
  return requestError('OVERLOADED', err.message, 503, { retryAfterMs: err.retryAfterMs }, [
    retryAfter(err.retryAfterMs),
  ]);
}

/** The request's deadline (ADVSIEVE_REQUEST_TIMEOUT_MS) passed: 504, no partial answer. */
export function deadlineExceeded(timeoutMs: number, stage: string): GraphQLError {
  return requestError(
    'DEADLINE_EXCEEDED',
    `the request's deadline of ${timeoutMs} ms passed while ${stage}; nothing of it is answered`,
    504,
    { timeoutMs },
  );
}

export function attackQueueFull(waiting: number, retryAfterMs: number): GraphQLError {
  return requestError(
    'OVERLOADED',
    `an attack is running and ${waiting} are waiting; retry after ${retryAfterMs} ms`,
    503,
    { retryAfterMs },
    [retryAfter(retryAfterMs)],
  );
}

export function attacksDisabled(production: boolean): GraphQLError {
  return requestError(
    'ATTACKS_DISABLED',
    production
      ? 'attacks are off in production (NODE_ENV=production)'
      : 'attacks are switched off by configuration (ADVSIEVE_ATTACKS=0)',
    403,
  );
}

/** A request names a model the service does not serve: 400, with the ones it does. */
export function unknownModel(id: string, served: readonly string[]): GraphQLError {
  return requestError(
    'UNKNOWN_MODEL',
    // The id as sent, cut short: a client's megabyte of name is not echoed back.
    `no model '${id.length > 64 ? `${id.slice(0, 64)}…` : id}' is served here; models: ${served.join(', ')} (the \`models\` query lists them)`,
    400,
    { argumentName: 'model', models: [...served] },
  );
}

export function unavailable(message: string): GraphQLError {
  return requestError('UNAVAILABLE', message, 503);
}

/** The audit log cannot record the verdicts (none is then given: src/audit/records.ts), or cannot be read. */
export function auditUnavailable(
  message = 'the audit log cannot record verdicts now, so none is given; retry later',
): GraphQLError {
  return requestError('AUDIT_UNAVAILABLE', message, 503);
}

/** Jobs need Redis (REDIS_URL); without it their fields answer this and nothing else changes. */
export function jobsUnavailable(): GraphQLError {
  return requestError(
    'JOBS_UNAVAILABLE',
    'screening jobs are not available here: the service runs without a queue (REDIS_URL is not set)',
    503,
  );
}

/** An id that names no job the caller may see (expired, never made, or another key's). */
export function jobNotFound(id: string): GraphQLError {
  return requestError('JOB_NOT_FOUND', `no screening job '${id.slice(0, 64)}'`, 404, { argumentName: 'id' });
}

/**
 * A job for a model that this replica serves but no running consumer does (the replica does not
 * consume, ADVSIEVE_JOB_CONSUMER=off, and no `advsieve worker` loads the model): it would wait
 * for one, so it is refused; 503, as a consumer may start.
 */
export function noJobConsumer(model: string): GraphQLError {
  return requestError(
    'JOBS_UNAVAILABLE',
    `no job consumer serving model '${model}' is running: start \`advsieve worker\` with it, or let a replica consume (ADVSIEVE_JOB_CONSUMER)`,
    503,
    { model },
  );
}

export function jobDirectoryNotAllowed(message: string): GraphQLError {
  return requestError('JOB_DIRECTORY_NOT_ALLOWED', message, 403, { argumentName: 'directory' });
}

/** Status of an http-errors style error (graphql-upload's, body-parser's), if it has one. */
export function httpStatusOf(err: unknown): number | undefined {
  const s =
    (err as { status?: unknown; statusCode?: unknown })?.status ?? (err as { statusCode?: unknown })?.statusCode;
  return typeof s === 'number' && s >= 400 && s < 600 ? s : undefined;
}

interface HttpExtension {
  readonly status?: number;
  readonly headers?: Iterable<[string, string]>;
}

/** Sends refusals from Express middleware (admission, the gateway), as Apollo would: one status and its headers, the errors without `http`. */
export function sendRefusal(res: Response, errors: readonly GraphQLError[]): void {
  const http = errors[0].extensions.http as HttpExtension | undefined;
  for (const [name, value] of http?.headers ?? []) res.setHeader(name, value);
  const body: GraphQLFormattedError[] = errors.map((e) => ({
    message: e.message,
    extensions: Object.fromEntries(Object.entries(e.extensions).filter(([name]) => name !== 'http')),
  }));
  res.status(http?.status ?? 400).json({ errors: body });
}
