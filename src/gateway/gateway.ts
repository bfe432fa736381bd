/**
 * The gateway in front of /graphql: who gets in (API keys), how much they may ask (a token bucket
 * per key), and what shape of request is accepted (batch size, trusted documents, query limits).
 * Its Express middleware runs in this order, each step before anything costlier:
 *
 *   authenticate  headers only: 401 UNAUTHENTICATED before any upload is read
 *   admit         one token per request from the key's bucket: 429 RATE_LIMITED
 *   (uploads and the JSON body are read here, by the server's own middleware)
 *   checkOperations  batch size (TOO_MANY_OPERATIONS) and shape (BAD_REQUEST), the list entries
 *                 of each operation's variables (PAYLOAD_TOO_LARGE, before graphql-js coerces
 *                 them), trusted documents (PERSISTED_QUERY_NOT_ALLOWED),
 *                 depth/cost/aliases/directives/tokens: 400 each, variables the operation does
 *                 not declare (BAD_USER_INPUT)
 *
 * then Apollo, whose context gets the principal (for `@Authorized` scopes, src/gateway/scopes.ts)
 * and the charge for the request's images against the key's bucket.
 */
import type { Request, RequestHandler, Response } from 'express';
import type { GraphQLError } from 'graphql';
import type { Metrics } from '../request/metrics';
import { declaredBodyBytes } from '../request/bodyLength';
import type { Principal } from '../request/context';
import { sendRefusal } from '../request/errors';
import { logger } from '../util/logger';
import { ApiKeyEntry, ApiKeyStore } from './apiKeys';
import {
  badRequest,
  persistedQueryNotAllowed,
  rateLimited,
  tooManyListEntries,
  tooManyOperations,
  unauthenticated,
  undeclaredVariables,
  forbidden,
} from './errors';
import type { QueryLimiter, QueryLimits } from './queryLimits';
import { BucketLimit, RateLimiter, RequestMeter, TokenBuckets } from './rateLimit';
import { RedisFailurePolicy, RedisTokenBuckets } from './redisRateLimit';
import { persistedQueryError, persistedQueryScope } from './persistedQueries';
import { TrustedDocuments } from './trustedDocuments';
import { DeclaredVariables } from './undeclaredVariables';
import { listEntriesOver } from './variableLists';
import { clientAddress } from '../util/clientAddress';

export interface GatewayConfig {
  /** The configured API keys; none: the API is open to anyone who reaches it. */
  readonly apiKeys: readonly ApiKeyEntry[];
  /** A key's bucket unless its entry has its own; perSecond 0: keys are not rate-limited. */
  readonly rateLimit: BucketLimit;
  /**
   * REDIS_URL: the buckets live in Redis, shared by every replica that names it
   * (src/gateway/redisRateLimit.ts); unset: in this process's memory.
   */
  readonly redisUrl: string | undefined;
  /** ADVSIEVE_RATE_LIMIT_REDIS_FAILURE: when Redis does not answer, this process's buckets ('local') or 503 ('refuse'). */
  readonly redisFailure: RedisFailurePolicy;
  /** Each key's bucket of request-body bytes (perSecond 0: not limited), charged by Content-Length before the body is read. */
  readonly bodyRateLimit: BucketLimit;
  readonly queryLimits: QueryLimits;
  /** Most operations in one batched HTTP request (a JSON array). */
  readonly maxBatchedOperations: number;
  /** An Apollo persisted-query manifest: when set, only its documents run. */
  readonly trustedDocumentsFile: string | undefined;
  /** Automatic persisted queries (a per-key cache; src/gateway/persistedQueries.ts). */
  readonly apq: boolean;
  /** /metrics: on the main port ('on'), nowhere ('off'), or on a listener of its own. */
  readonly metrics: 'on' | 'off' | { readonly port: number; readonly host: string };
}

/** What the gateway needs of the service's own settings (a ServerConfig has them). */
export interface ServiceLimits {
  /** ADVSIEVE_MAX_IMAGES: also bounds the list entries of each operation's variables. */
  readonly maxImages: number;
  /** NODE_ENV=production: Apollo serves no landing page, so no request skips the key or the checks for one. */
  readonly production: boolean;
}

/** What the gateway leaves on `res.locals` for the next steps. */
interface GatewayLocals {
  principal?: Principal;
  meter?: RequestMeter;
}

function locals(res: Response): GatewayLocals {
  return res.locals as GatewayLocals;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** The key a request presents: `Authorization: Bearer <key>`, else `x-api-key: <key>`. */
function presentedKey(req: Request): string | undefined {
  const bearer = BEARER.exec(req.get('authorization') ?? '')?.[1];
  return bearer ?? (req.get('x-api-key')?.trim() || undefined);
}

/**
 * A GET's URL as the gateway reads it; undefined when it does not parse (`GET /graphql//[`).
 * WHATWG's parser, not the legacy `url.parse` that Apollo's Express integration uses, and the two
 * need not agree on every odd URL: so `getOperation` writes the request's URL back from the
 * parameters read here, and Apollo reads exactly the parameters that were checked, whatever
 * encoding the client chose (`%71uery=` is `query=`).
 */
function urlOf(req: Request): URL | undefined {
  try {
    return new URL(req.url, 'http://gateway');
  } catch {
    return undefined;
  }
}

/** A JSON-valued GET parameter; undefined when absent or not JSON (Apollo says what is wrong with it). */
function jsonParameter(params: URLSearchParams, name: string): unknown {
  const text = params.get(name);
  if (text === null) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** One operation of a request (a JSON body, one element of a batch, or a GET's parameters). */
interface Operation {
  readonly query: unknown;
  readonly persistedHash: unknown;
  /** `extensions.persistedQuery` as sent (checked by persistedQueryError). */
  readonly persisted: unknown;
  readonly variables: unknown;
  setQuery(query: string): void;
}

/** A request's operations (`batched`: sent as a JSON array), or why the gateway refuses it. */
type Operations =
  | { readonly operations: readonly Operation[]; readonly batched: boolean; readonly refusal?: undefined }
  | { readonly refusal: GraphQLError };

function persistedOf(extensions: unknown): unknown {
  return (extensions as { persistedQuery?: unknown } | null | undefined)?.persistedQuery;
}

function persistedHashOf(extensions: unknown): unknown {
  return (persistedOf(extensions) as { sha256Hash?: unknown } | null | undefined)?.sha256Hash;
}

function getOperation(req: Request): Operations {
  const url = urlOf(req);
  if (!url) return { refusal: badRequest("the request's URL does not parse") };
  const params = url.searchParams;
  const writeBack = () => {
    req.url = `${url.pathname}?${params.toString()}`;
  };
  writeBack();
  const operation: Operation = {
    query: params.get('query') ?? undefined,
    persistedHash: persistedHashOf(jsonParameter(params, 'extensions')),
    persisted: persistedOf(jsonParameter(params, 'extensions')),
    variables: jsonParameter(params, 'variables'),
    setQuery(query) {
      params.set('query', query);
      writeBack();
    },
  };
  return { operations: [operation], batched: false };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function bodyOperation(op: Record<string, unknown>): Operation {
  return {
    query: op.query,
    persistedHash: persistedHashOf(op.extensions),
    persisted: persistedOf(op.extensions),
    variables: op.variables,
    setQuery(query) {
      op.query = query;
    },
  };
}

/**
 * A body's operations. A batch is counted by its length, before anything in it is looked at, and
 * every element must be an operation object: Apollo answers each element of a batch, building an
 * error (with its stack) for each that is not an operation, so a 6 MB body of zeros was three
 * million errors and the heap ran out.
 */
function bodyOperations(body: unknown, maxBatched: number): Operations {
  if (!Array.isArray(body)) return { operations: isRecord(body) ? [bodyOperation(body)] : [], batched: false };
  if (body.length > maxBatched) return { refusal: tooManyOperations(body.length, maxBatched) };
  const bad = body.findIndex((op) => !isRecord(op));
  if (bad >= 0) {
    const got = Array.isArray(body[bad]) ? 'an array' : body[bad] === null ? 'null' : `a ${typeof body[bad]}`;
    return {
      refusal: badRequest(`operation ${bad} of the batch must be an object {"query", "variables", …}; got ${got}`),
    };
  }
  return { operations: (body as Array<Record<string, unknown>>).map(bodyOperation), batched: true };
}

export class Gateway {
  readonly keys: ApiKeyStore;
  private readonly trusted: TrustedDocuments | undefined;
  /** The key's buckets: in Redis with REDIS_URL, else in this process. */
  readonly buckets: RateLimiter & { readonly kind: 'memory' | 'redis' };
  private readonly declared: DeclaredVariables;

  /** Reads the trusted documents, if configured: a bad manifest stops the start here. */
  constructor(
    readonly config: GatewayConfig,
    private readonly metrics: Metrics,
    private readonly service: ServiceLimits,
  ) {
    this.keys = new ApiKeyStore(config.apiKeys);
    this.trusted = config.trustedDocumentsFile ? TrustedDocuments.load(config.trustedDocumentsFile) : undefined;
    this.declared = new DeclaredVariables(config.queryLimits.maxTokens);
    this.buckets = config.redisUrl
      ? new RedisTokenBuckets({ url: config.redisUrl, failure: config.redisFailure })
      : Object.assign(new TokenBuckets(), { kind: 'memory' as const });
  }

  /** Closes the connection to Redis, if any. */
  async close(): Promise<void> {
    if (this.buckets instanceof RedisTokenBuckets) await this.buckets.close();
  }

  /** The start-up log lines: an open API is worth a warning. */
  logSettings(): void {
    const c = this.config;
    if (this.keys.enabled) {
      logger.info(
        { keys: c.apiKeys.map((k) => ({ id: k.id, scopes: k.scopes })), rateLimit: c.rateLimit },
        `API keys: ${c.apiKeys.length} configured; /graphql needs one`,
      );
    } else {
      logger.warn(
        'no API keys configured (ADVSIEVE_API_KEYS_FILE, ADVSIEVE_API_KEYS): /graphql is open to anyone who can reach it, without rate limits',
      );
    }
    logger.info(
      {
        queryLimits: c.queryLimits,
        maxBatchedOperations: c.maxBatchedOperations,
        trustedDocuments: this.trusted?.size,
      },
      this.trusted
        ? `trusted documents: only the ${this.trusted.size} of ${c.trustedDocumentsFile} run`
        : 'query limits in force',
    );
    this.warnSmallBuckets();
  }

  /**
   * Names the buckets smaller than the largest request the images limit admits (maxImages images
   * and the door's token). A request never costs more than its bucket, so that any admitted
   * request can run once the bucket is full; below that size a key's largest requests cost less
   * than their images, and the key screens more images a second than its rate says.
   *
   * A warning, not a refusal: the defaults themselves are one token short (a bucket of 256 and
   * requests of up to 256 images), key files that started yesterday would stop today, and the
   * excess is bounded (at most (maxImages + 1) / burst times the rate) and stated here.
   */
  private warnSmallBuckets(): void {
    const largest = this.service.maxImages + 1;
    const short = (limit: BucketLimit) => limit.perSecond > 0 && limit.burst < largest;
    const excess = (limit: BucketLimit) => (largest / limit.burst).toFixed(3);
    const advice = `raise it to ${largest} or lower ADVSIEVE_MAX_IMAGES`;
    const onDefault = this.config.apiKeys.filter((k) => !k.rateLimit).map((k) => k.id);
    const dflt = this.config.rateLimit;
    if (onDefault.length && short(dflt)) {
      logger.warn(
        { keys: onDefault, burst: dflt.burst, largestRequest: largest },
        `ADVSIEVE_RATE_LIMIT_BURST ${dflt.burst} is below ADVSIEVE_MAX_IMAGES + 1 = ${largest}: a request never costs more than its bucket, so the keys ${onDefault.map((id) => `'${id}'`).join(', ')} can screen up to ${excess(dflt)}× their rate in images; ${advice}`,
      );
    }
    for (const k of this.config.apiKeys) {
      if (!k.rateLimit || !short(k.rateLimit)) continue;
      logger.warn(
        { key: k.id, burst: k.rateLimit.burst, largestRequest: largest },
        `API key '${k.id}': rateLimit.burst ${k.rateLimit.burst} is below ADVSIEVE_MAX_IMAGES + 1 = ${largest}: a request never costs more than its bucket, so it can screen up to ${excess(k.rateLimit)}× its rate in images; ${advice}`,
      );
    }
  }

  private refuse(res: Response, errors: readonly GraphQLError[]): void {
    this.metrics.requests.inc({ operation: 'none', outcome: String(errors[0].extensions.code) });
    sendRefusal(res, errors);
  }

  /**
   * A browser asking for the landing page: outside production (where Apollo serves one) a GET that
   * prefers HTML and has no operation at all, read from the parsed parameters — neither `query`
   * nor `extensions` (a persisted query's hash), so there is nothing Apollo could run. In
   * production every request is an operation, checked like any other.
   */
  private isLandingPageRequest(req: Request): boolean {
    if (this.service.production || req.method !== 'GET' || req.accepts(['json', 'html']) !== 'html') return false;
    const params = urlOf(req)?.searchParams;
    return params !== undefined && !params.has('query') && !params.has('extensions');
  }

  /** With keys configured, the request's key → its principal; without a valid one, 401. */
  readonly authenticate: RequestHandler = (req, res, next) => {
    if (this.isLandingPageRequest(req)) next();
    else this.requireKey(req, res, next);
  };

  private requireKey(req: Request, res: Response, next: () => void): void {
    if (!this.keys.enabled) {
      next();
      return;
    }
    const key = presentedKey(req);
    const principal = key === undefined ? undefined : this.keys.verify(key);
    if (!principal) {
      this.refuse(res, [
        unauthenticated(
          key === undefined
            ? 'an API key is required: send "Authorization: Bearer <key>" or "x-api-key: <key>"'
            : 'the API key is not valid',
        ),
      ]);
      return;
    }
    locals(res).principal = principal;
    next();
  }

  /**
   * Whether the request presents a configured key (any scope): health answers give their details
   * to key holders only. False when no keys are configured.
   */
  presentsValidKey(req: Request): boolean {
    const key = presentedKey(req);
    return this.keys.enabled && key !== undefined && this.keys.verify(key) !== undefined;
  }

  /** Guards /metrics on the main port: with keys configured, an `admin` key is needed. */
  readonly requireAdmin: RequestHandler = (req, res, next) => {
    this.requireKey(req, res, () => {
      const principal = locals(res).principal;
      if (principal && !principal.scopes.has('admin')) this.refuse(res, [forbidden(principal.keyId, ['admin'])]);
      else next();
    });
  };

  /** The body's declared bytes from the key's byte bucket (a chunked body, of unknown length, a full bucket). */
  private async takeBodyBytes(
    req: Request,
    principal: Principal | undefined,
  ): Promise<{ retryAfterMs: number; limit: string } | undefined> {
    const limit = this.config.bodyRateLimit;
    if (!principal || limit.perSecond <= 0) return undefined;
    const bytes = declaredBodyBytes(req) ?? limit.burst;
    if (bytes === 0) return undefined;
    const refusal = await this.buckets.take(`${principal.keyId}\u0000bytes`, bytes, limit);
    return refusal && { ...refusal, limit: 'bodyBytesPerSecond' };
  }

  /** The key's bucket for this request, or none (no keys, or a limit of 0 per second). */
  private meterFor(principal: Principal | undefined): RequestMeter | undefined {
    if (!principal) return undefined;
    const limit = this.keys.entry(principal.keyId)?.rateLimit ?? this.config.rateLimit;
    return limit.perSecond > 0 ? new RequestMeter(this.buckets, principal.keyId, limit) : undefined;
  }

  /**
   * One token per request, and the body's declared bytes from the key's byte bucket, before the
   * body is read; the meter stays for the request's images. Bytes are what a request costs the
   * main thread before any field runs (reading, parsing, base64), so a key that sends large bodies
   * is paced by bytes, not only by requests. A chunked body, of unknown length, costs a full bucket.
   * Shared buckets that cannot be asked refuse with their own error (RATE_LIMIT_UNAVAILABLE).
   */
  readonly admit: RequestHandler = async (req, res, next) => {
    const principal = locals(res).principal;
    const meter = this.meterFor(principal);
    let refusal: { retryAfterMs: number; limit?: string } | undefined;
    try {
      refusal = (await meter?.take(1)) ?? (await this.takeBodyBytes(req, principal));
    } catch (err) {
      this.refuse(res, [err as GraphQLError]);
      return;
    }
    if (refusal) {
      this.refuse(res, [rateLimited(refusal.retryAfterMs, refusal.limit)]);
      return;
    }
    locals(res).meter = meter;
    next();
  };

  /**
   * Batch size and shape, the list entries of each operation's variables, trusted documents and
   * query limits, once the body is read (a multipart request's `operations` too) and before Apollo.
   */
  checkOperations(limiter: QueryLimiter): RequestHandler {
    return (req, res, next) => {
      if (this.isLandingPageRequest(req)) {
        next(); // not an operation: Apollo serves the page
        return;
      }
      const read =
        req.method === 'GET' ? getOperation(req) : bodyOperations(req.body, this.config.maxBatchedOperations);
      // A multipart request's map may put a file where the operation declares nothing: that file's
      // image is answered with its own error, as before (the operations part is bounded by the upload limits).
      const undeclaredRefused = !req.is('multipart/form-data');
      const errors = read.refusal
        ? [read.refusal]
        : this.operationErrors(read.operations, read.batched, limiter, undeclaredRefused);
      if (errors.length) this.refuse(res, errors);
      // Apollo runs in the key's scope: its persisted-query cache is the key's own (src/gateway/persistedQueries.ts).
      else persistedQueryScope.run(locals(res).principal?.keyId ?? '', next);
    };
  }

  /** The first operation's refusal: too many list entries in its variables, an untrusted document, or query limits. */
  private operationErrors(
    operations: readonly Operation[],
    batched: boolean,
    limiter: QueryLimiter,
    undeclaredRefused: boolean,
  ): GraphQLError[] {
    const maxImages = this.service.maxImages;
    let work = 0;
    for (const [i, op] of operations.entries()) {
      if (listEntriesOver(op.variables, maxImages)) {
        return [tooManyListEntries(batched ? `operation ${i} of the batch` : 'the operation', maxImages)];
      }
      const malformed = persistedQueryError(op.persisted, op.query);
      if (malformed) return [malformed];
      const refusal = this.trusted ? this.trust(op) : undefined;
      if (refusal) return [refusal];
      if (typeof op.query !== 'string') continue;
      const checked = limiter.checkWithWork(op.query);
      if (checked.errors.length) return checked.errors;
      work += checked.work;
      const undeclared = undeclaredRefused ? this.declared.undeclared(op.query, op.variables) : [];
      if (undeclared.length)
        return [undeclaredVariables(batched ? `operation ${i} of the batch` : 'the operation', undeclared)];
    }
    // The batch's work together: 8 operations of 16 aliased spectra each are one request's work.
    const tooMuch = limiter.workError(work);
    return tooMuch ? [tooMuch] : [];
  }

  /** Admits an operation's document if it is trusted, filling in the body of a listed hash. */
  private trust(op: Operation): GraphQLError | undefined {
    const trusted = this.trusted!;
    if (typeof op.query === 'string' && op.query.length > 0) {
      return trusted.allows(op.query)
        ? undefined
        : persistedQueryNotAllowed(
            'this document is not a trusted document (ADVSIEVE_TRUSTED_DOCUMENTS): send a listed body, or its hash in extensions.persistedQuery.sha256Hash',
          );
    }
    const body = typeof op.persistedHash === 'string' ? trusted.body(op.persistedHash) : undefined;
    if (body === undefined) {
      return persistedQueryNotAllowed(
        typeof op.persistedHash === 'string'
          ? `no trusted document has the hash ${op.persistedHash.slice(0, 64)}`
          : 'only trusted documents run here: send a listed body, or its hash in extensions.persistedQuery.sha256Hash',
      );
    }
    op.setQuery(body);
    return undefined;
  }

  /** Whose share of admission a request is charged to (src/server/admission.ts): its key, else its address (IPv6: its /64). */
  clientOf(req: Request, res: Response): string {
    const principal = locals(res).principal;
    return principal ? `key:${principal.keyId}` : `address:${clientAddress(req.socket.remoteAddress)}`;
  }

  /** The principal for the API context; with keys configured, a request without one never gets here. */
  principalOf(res: Response): Principal | undefined {
    const principal = locals(res).principal;
    if (this.keys.enabled && !principal) throw unauthenticated('an API key is required');
    return principal;
  }

  /**
   * How the request pays for each image a field reads, from its key's bucket (before anything is
   * decoded): a refusal throws the request's RATE_LIMITED error. Undefined when the key is not
   * rate-limited (or no keys are configured).
   */
  imageChargeFor(res: Response): ((images: number) => Promise<void>) | undefined {
    const meter = locals(res).meter;
    if (!meter) return undefined;
    return async (images) => {
      const refusal = await meter.take(images);
      if (refusal) throw rateLimited(refusal.retryAfterMs);
    };
  }
}
