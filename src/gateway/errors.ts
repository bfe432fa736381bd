/**
 * The gateway's refusals, as request-level GraphQL errors (src/request/errors.ts): each carries its
 * `extensions.code` and an HTTP status. Most are sent by Express middleware before Apollo runs
 * (`sendRefusal` in src/request/errors.ts); a scope refusal and a rate limit met while reading images are thrown by
 * resolvers, and Apollo sends the same status from the same extension.
 */
import type { GraphQLError } from 'graphql';
import { payloadTooLarge, requestError, retryAfter } from '../request/errors';

/** The challenge a 401 carries (RFC 6750): keys are bearer tokens. */
export const WWW_AUTHENTICATE = 'Bearer realm="advsieve"';

export function unauthenticated(message: string): GraphQLError {
  return requestError('UNAUTHENTICATED', message, 401, {}, [['www-authenticate', WWW_AUTHENTICATE]]);
}

export function forbidden(keyId: string, needed: readonly string[]): GraphQLError {
  const scopes = needed.map((s) => `'${s}'`).join(' or ');
  return requestError('FORBIDDEN', `the API key '${keyId}' lacks the scope ${scopes}`, 403, { scopes: [...needed] });
}

/** A bucket ran dry: 429 with Retry-After in whole seconds and the hint in ms, as OVERLOADED does. */
export function rateLimited(retryAfterMs: number, limit?: string): GraphQLError {
  return requestError(
    'RATE_LIMITED',
    limit === 'bodyBytesPerSecond'
      ? `this API key's rate of request-body bytes is used up (ADVSIEVE_RATE_LIMIT_BYTES_PER_SECOND); retry after ${retryAfterMs} ms`
      : `rate limit reached for this API key; retry after ${retryAfterMs} ms`,
    429,
    limit ? { retryAfterMs, limit } : { retryAfterMs },
    [retryAfter(retryAfterMs)],
  );
}

/**
 * The shared rate limits (Redis) cannot be asked and the deployment chose to refuse rather than to
 * limit each replica on its own (ADVSIEVE_RATE_LIMIT_REDIS_FAILURE=refuse): 503, retry shortly.
 */
export function rateLimitUnavailable(): GraphQLError {
  return requestError(
    'RATE_LIMIT_UNAVAILABLE',
    'the shared rate limits (Redis) cannot be checked now, so rate-limited requests are refused; retry later',
    503,
    { retryAfterMs: 1000 },
    [retryAfter(1000)],
  );
}

/** A query over one of the limits of src/gateway/queryLimits.ts. */
export function queryLimit(code: string, limit: string, limitValue: number, message: string): GraphQLError {
  return requestError(code, message, 400, { limit, limitValue });
}

export function tooManyOperations(count: number, max: number): GraphQLError {
  return requestError(
    'TOO_MANY_OPERATIONS',
    `the request batches ${count} operations; at most ${max} are accepted`,
    400,
    { limit: 'maxBatchedOperations', limitValue: max },
  );
}

/** A request the gateway cannot read as GraphQL over HTTP: Apollo's own code for the same. */
export function badRequest(message: string): GraphQLError {
  return requestError('BAD_REQUEST', message, 400);
}

/**
 * An operation whose variables hold more list entries than the request may have images: the only
 * lists an operation's variables can fill are image lists, so this is the images limit, checked
 * before graphql-js coerces (and copies) every entry.
 */
export function tooManyListEntries(where: string, max: number): GraphQLError {
  return payloadTooLarge(
    `${where}: its variables hold more than ${max} list entries; a request takes at most ${max} images (ADVSIEVE_MAX_IMAGES)`,
    { name: 'maxImages', value: max },
  );
}

/** Variables the operation does not declare: graphql-js would ignore them, after every walk over them had paid. */
export function undeclaredVariables(where: string, names: readonly string[]): GraphQLError {
  const shown = names
    .slice(0, 5)
    .map((n) => `'${n.slice(0, 64)}'`)
    .join(', ');
  return requestError(
    'BAD_USER_INPUT',
    `${where}: its variables hold ${names.length} that it does not declare (${shown}${names.length > 5 ? ', …' : ''}); send only the variables the operation declares`,
    400,
    { undeclaredVariables: names.length },
  );
}

export function persistedQueryNotAllowed(message: string): GraphQLError {
  return requestError('PERSISTED_QUERY_NOT_ALLOWED', message, 400);
}
