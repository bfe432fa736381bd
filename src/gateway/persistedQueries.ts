/**
 * Automatic persisted queries (Apollo's APQ): a client sends a document's SHA-256 instead of the
 * document, once the server has cached it. Two choices are made here.
 *
 * Whether: APQ is off in production (NODE_ENV=production) unless trusted documents are configured
 * (ADVSIEVE_TRUSTED_DOCUMENTS: the gateway fills in the listed body of a hash, and Apollo needs APQ
 * on to accept a request that carries both) or ADVSIEVE_APQ=on says so. Off, a request with
 * `extensions.persistedQuery` gets Apollo's PERSISTED_QUERY_NOT_SUPPORTED.
 *
 * Whose cache: Apollo's cache is one for the process, keyed by the hash alone, so a document one
 * key registered could be run — and probed for, PERSISTED_QUERY_NOT_FOUND or not — by any other.
 * Here every API key has a cache of its own (anonymous callers share one, as they share everything
 * when no keys are configured): the key's id is carried to the cache through the request's async
 * context (`persistedQueryScope`, entered by the gateway just before Apollo runs).
 *
 * A request's `extensions.persistedQuery` is checked by the gateway before Apollo (whose own
 * refusals of these carry no code): version 1 and a 64-hex-digit hash, matching the document
 * when one is sent (persistedQueryError).
 */
import { AsyncLocalStorage } from 'async_hooks';
import { createHash } from 'crypto';
import type { GraphQLError } from 'graphql';
import { requestError } from '../request/errors';

/** The API key (its id; '' when anonymous) of the request being run. */
export const persistedQueryScope = new AsyncLocalStorage<string>();

/** What Apollo asks of a persisted-query cache (@apollo/utils.keyvaluecache's KeyValueCache<string>). */
export interface DocumentCache {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string, options?: { ttl?: number | null }): Promise<void>;
  delete(key: string): Promise<boolean | void>;
}

/**
 * Per API key, bounded: at most `maxEntries` documents (the oldest forgotten first), each at most
 * `maxChars` long (the gateway's token limit bounds a document that passed; this bounds memory).
 */
export class PerKeyDocumentCache implements DocumentCache {
  private readonly entries = new Map<string, string>();

  constructor(
    private readonly scope: () => string | undefined = () => persistedQueryScope.getStore(),
    private readonly maxEntries = 10_000,
    private readonly maxChars = 64 * 1024,
  ) {}

  /** The cache key for this request's API key: its id is part of it, never another key's. */
  private keyed(key: string): string | undefined {
    const owner = this.scope();
    // Outside a request's scope (never expected): nothing is shared, nothing is found.
    return owner === undefined ? undefined : `${owner}\u0000${key}`;
  }

  async get(key: string): Promise<string | undefined> {
    const k = this.keyed(key);
    return k === undefined ? undefined : this.entries.get(k);
  }

  async set(key: string, value: string): Promise<void> {
    const k = this.keyed(key);
    if (k === undefined || value.length > this.maxChars) return;
    this.entries.delete(k);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(k, value);
  }

  async delete(key: string): Promise<boolean> {
    const k = this.keyed(key);
    return k === undefined ? false : this.entries.delete(k);
  }
}

/** ADVSIEVE_APQ unset: on outside production, and in production only with trusted documents. */
export function apqEnabled(setting: boolean | undefined, production: boolean, trustedDocuments: boolean): boolean {
  return setting ?? (!production || trustedDocuments);
}

const SHA256_HEX = /^[0-9a-f]{64}$/i;

/** A malformed `extensions.persistedQuery` (undefined when absent or well formed), with a code of its own. */
export function persistedQueryError(persisted: unknown, query: unknown): GraphQLError | undefined {
  if (persisted === undefined || persisted === null) return undefined;
  const p = persisted as { version?: unknown; sha256Hash?: unknown };
  if (typeof persisted !== 'object' || Array.isArray(persisted))
    return requestError(
      'PERSISTED_QUERY_INVALID',
      'extensions.persistedQuery must be an object {version, sha256Hash}',
      400,
    );
  if (p.version !== 1)
    return requestError(
      'PERSISTED_QUERY_VERSION_NOT_SUPPORTED',
      `extensions.persistedQuery.version must be 1, got ${JSON.stringify(p.version)?.slice(0, 20)}`,
      400,
    );
  if (typeof p.sha256Hash !== 'string' || !SHA256_HEX.test(p.sha256Hash))
    return requestError('PERSISTED_QUERY_INVALID', 'extensions.persistedQuery.sha256Hash must be 64 hex digits', 400);
  if (typeof query === 'string' && createHash('sha256').update(query).digest('hex') !== p.sha256Hash.toLowerCase())
    return requestError(
      'PERSISTED_QUERY_HASH_MISMATCH',
      'extensions.persistedQuery.sha256Hash is not the SHA-256 of the document sent',
      400,
    );
  return undefined;
}
