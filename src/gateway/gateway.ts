/**
 * The gateway in front of /graphql: who gets in (API keys), how much they may ask (a token bucket
 * per key), and what shape of request is accepted (batch size, trusted documents, query limits).
 * Its Express middleware runs in this order, each step before anything costlier:
 *
 *   authenticate  headers only: 401 UNAUTHENTICATED before any upload is read
 *   admit         one token per request from the key's bucket: 429 RATE_LIMITED
 *   (uploads and the JSON body are read here, by the server's own middleware)
 *   checkOperations  batch size (TOO_MANY_OPERATIONS), trusted documents
 *                 (PERSISTED_QUERY_NOT_ALLOWED), depth/cost/aliases/directives/tokens: 400 each
 *
 * then Apollo, whose context gets the principal (for `@Authorized` scopes, src/gateway/scopes.ts)
 * and the request's images metered against the key's bucket.
 */
import type { Request, RequestHandler, Response } from 'express';
import type { GraphQLError } from 'graphql';
import type { Metrics } from '../server/metrics';
import type { Principal } from '../server/operations';
import { RequestImages } from '../server/requestImages';
import { logger } from '../util/logger';
import { ApiKeyEntry, ApiKeyStore } from './apiKeys';
import {
  persistedQueryNotAllowed,
  rateLimited,
  sendRefusal,
  tooManyOperations,
  unauthenticated,
  forbidden,
} from './errors';
import { MeteredRequestImages } from './meteredImages';
import type { QueryLimiter, QueryLimits } from './queryLimits';
import { BucketLimit, RateLimiter, RequestMeter, TokenBuckets } from './rateLimit';
import { TrustedDocuments } from './trustedDocuments';

export interface GatewayConfig {
  /** The configured API keys; none: the API is open to anyone who reaches it. */
  readonly apiKeys: readonly ApiKeyEntry[];
  /** A key's bucket unless its entry has its own; perSecond 0: keys are not rate-limited. */
  readonly rateLimit: BucketLimit;
  readonly queryLimits: QueryLimits;
  /** Most operations in one batched HTTP request (a JSON array). */
  readonly maxBatchedOperations: number;
  /** An Apollo persisted-query manifest: when set, only its documents run. */
  readonly trustedDocumentsFile: string | undefined;
  /** /metrics: on the main port ('on'), nowhere ('off'), or on a listener of its own. */
  readonly metrics: 'on' | 'off' | { readonly port: number; readonly host: string };
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

/** A browser asking for the landing page: static HTML, no operation (Apollo serves it only outside production). */
function isLandingPageRequest(req: Request): boolean {
  return req.method === 'GET' && !/[?&](query|extensions)=/.test(req.url) && req.accepts(['json', 'html']) === 'html';
}

/** One operation of a request (a JSON body, one element of a batch, or a GET's parameters). */
interface Operation {
  readonly query: unknown;
  readonly persistedHash: unknown;
  setQuery(query: string): void;
}

function persistedHashOf(extensions: unknown): unknown {
  return (extensions as { persistedQuery?: { sha256Hash?: unknown } } | null | undefined)?.persistedQuery?.sha256Hash;
}

function operationsOf(req: Request): { operations: Operation[]; batched: boolean } {
  if (req.method === 'GET') {
    const url = new URL(req.url, 'http://gateway');
    const params = url.searchParams;
    let extensions: unknown;
    try {
      extensions = JSON.parse(params.get('extensions') ?? 'null');
    } catch {
      extensions = undefined; // Apollo says what is wrong with it
    }
    const operation: Operation = {
      query: params.get('query') ?? undefined,
      persistedHash: persistedHashOf(extensions),
      setQuery(query) {
        params.set('query', query);
        req.url = url.pathname + url.search;
      },
    };
    return { operations: [operation], batched: false };
  }
  const body: unknown = req.body;
  const list = Array.isArray(body) ? body : [body];
  const operations = list
    .filter((op): op is Record<string, unknown> => typeof op === 'object' && op !== null && !Array.isArray(op))
    .map((op): Operation => ({
      query: op.query,
      persistedHash: persistedHashOf(op.extensions),
      setQuery(query) {
        op.query = query;
      },
    }));
  return { operations, batched: Array.isArray(body) };
}

export class Gateway {
  readonly keys: ApiKeyStore;
  private readonly trusted: TrustedDocuments | undefined;
  private readonly buckets: RateLimiter = new TokenBuckets();

  /** Reads the trusted documents, if configured: a bad manifest stops the start here. */
  constructor(
    readonly config: GatewayConfig,
    private readonly metrics: Metrics,
  ) {
    this.keys = new ApiKeyStore(config.apiKeys);
    this.trusted = config.trustedDocumentsFile ? TrustedDocuments.load(config.trustedDocumentsFile) : undefined;
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
  }

  private refuse(res: Response, errors: readonly GraphQLError[]): void {
    this.metrics.requests.inc({ operation: 'none', outcome: String(errors[0].extensions.code) });
    sendRefusal(res, errors);
  }

  /** With keys configured, the request's key → its principal; without a valid one, 401. */
  readonly authenticate: RequestHandler = (req, res, next) => {
    if (isLandingPageRequest(req)) next();
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

  /** Guards /metrics on the main port: with keys configured, an `admin` key is needed. */
  readonly requireAdmin: RequestHandler = (req, res, next) => {
    this.requireKey(req, res, () => {
      const principal = locals(res).principal;
      if (principal && !principal.scopes.has('admin')) this.refuse(res, [forbidden(principal.keyId, ['admin'])]);
      else next();
    });
  };

  /** The key's bucket for this request, or none (no keys, or a limit of 0 per second). */
  private meterFor(principal: Principal | undefined): RequestMeter | undefined {
    if (!principal) return undefined;
    const limit = this.keys.entry(principal.keyId)?.rateLimit ?? this.config.rateLimit;
    return limit.perSecond > 0 ? new RequestMeter(this.buckets, principal.keyId, limit) : undefined;
  }

  /** One token per request, before the body is read; the meter stays for the request's images. */
  readonly admit: RequestHandler = (_req, res, next) => {
    const meter = this.meterFor(locals(res).principal);
    const refusal = meter?.take(1);
    if (refusal) {
      this.refuse(res, [rateLimited(refusal.retryAfterMs)]);
      return;
    }
    locals(res).meter = meter;
    next();
  };

  /** Batch size, trusted documents and query limits, once the body is read and before Apollo. */
  checkOperations(limiter: QueryLimiter): RequestHandler {
    const max = this.config.maxBatchedOperations;
    return (req, res, next) => {
      if (isLandingPageRequest(req)) {
        next(); // not an operation: Apollo serves the page, or (in production) refuses
        return;
      }
      const { operations, batched } = operationsOf(req);
      if (batched && operations.length > max) {
        this.refuse(res, [tooManyOperations(operations.length, max)]);
        return;
      }
      for (const op of operations) {
        const refusal = this.trusted ? this.trust(op) : undefined;
        const errors = refusal ? [refusal] : typeof op.query === 'string' ? limiter.check(op.query) : [];
        if (errors.length) {
          this.refuse(res, errors);
          return;
        }
      }
      next();
    };
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

  /** The principal for the API context; with keys configured, a request without one never gets here. */
  principalOf(res: Response): Principal | undefined {
    const principal = locals(res).principal;
    if (this.keys.enabled && !principal) throw unauthenticated('an API key is required');
    return principal;
  }

  /** The request's images, paid for from the key's bucket when it has one. */
  imagesFor(res: Response, ...args: ConstructorParameters<typeof RequestImages>): RequestImages {
    const meter = locals(res).meter;
    return meter ? new MeteredRequestImages(meter, ...args) : new RequestImages(...args);
  }
}
