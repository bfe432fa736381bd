/**
 * API keys: how they are made, written down in configuration, and recognised.
 *
 * A key is 32 random bytes, shown once as `asv_<keyId>_<base64url secret>`; the configuration
 * keeps only the SHA-256 of the whole key. A fast hash is the right one here: the secret has 256
 * bits of entropy, so nobody can guess their way back from the hash, and the slow, salted hashes
 * made for passwords (bcrypt, scrypt, argon2) would only add milliseconds to every request. The
 * key id in the key selects the entry; the hashes are compared in constant time.
 *
 * Configuration: ADVSIEVE_API_KEYS_FILE (a JSON file) and/or ADVSIEVE_API_KEYS (the same JSON
 * inline), each an array of `{"id", "scopes", "sha256", "rateLimit"?: {"perSecond", "burst"}}`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'crypto';
import * as fs from 'fs';
import { SCOPES, type Principal, type Scope } from '../request/context';

export { SCOPES, type Scope };

const KEY_PREFIX = 'asv_';
/** No underscore: the key's text splits at the first one after the prefix. */
const KEY_ID = /^[A-Za-z0-9-]{1,64}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const SECRET_BYTES = 32;
const ENTRY_FIELDS = new Set(['id', 'scopes', 'sha256', 'rateLimit']);

/** A key's own token bucket, overriding ADVSIEVE_RATE_LIMIT_PER_SECOND and _BURST. */
export interface KeyRateLimit {
  /** Tokens (images, plus one per request) added per second; 0: no limit for this key. */
  readonly perSecond: number;
  /** Bucket size: the most a key can spend at once after being idle. */
  readonly burst: number;
}

/** One configured key, as written in the key file. */
export interface ApiKeyEntry {
  readonly id: string;
  readonly scopes: readonly Scope[];
  /** SHA-256 (hex) of the whole key text. */
  readonly sha256: string;
  readonly rateLimit?: KeyRateLimit;
}

export class ApiKeyConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApiKeyConfigError';
  }
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** A new key and the entry to configure for it (the key itself is not kept anywhere). */
export function createApiKey(
  id: string,
  scopes: readonly Scope[],
  rateLimit?: KeyRateLimit,
): { key: string; entry: ApiKeyEntry } {
  const key = `${KEY_PREFIX}${id}_${randomBytes(SECRET_BYTES).toString('base64url')}`;
  const entry = checkEntry({ id, scopes, sha256: hashKey(key), ...(rateLimit ? { rateLimit } : {}) }, 'the new key');
  return { key, entry };
}

/** The key id written in a key's text, or undefined when the text is not shaped like a key. */
export function keyIdOf(key: string): string | undefined {
  if (!key.startsWith(KEY_PREFIX)) return undefined;
  const end = key.indexOf('_', KEY_PREFIX.length);
  if (end < 0) return undefined;
  const id = key.slice(KEY_PREFIX.length, end);
  return KEY_ID.test(id) ? id : undefined;
}

function fail(where: string, problem: string, got: unknown): never {
  throw new ApiKeyConfigError(`${where}: ${problem}; got ${JSON.stringify(got)?.slice(0, 200)}`);
}

/** Parses the scopes list of an entry: a non-empty list of known scope names, each once. */
export function parseScopes(value: unknown, where: string): Scope[] {
  if (!Array.isArray(value) || value.length === 0)
    fail(where, `scopes must be a non-empty array of ${SCOPES.join(', ')}`, value);
  for (const s of value)
    if (!SCOPES.includes(s as Scope)) fail(where, `scopes: each must be one of ${SCOPES.join(', ')}`, s);
  if (new Set(value).size !== value.length) fail(where, 'scopes: each scope once', value);
  return value as Scope[];
}

function checkRateLimit(value: unknown, where: string): KeyRateLimit {
  const r = value as Partial<KeyRateLimit> | null;
  if (typeof r !== 'object' || r === null || Array.isArray(r))
    fail(where, 'rateLimit must be an object {"perSecond": n, "burst": n}', value);
  const extra = Object.keys(r).filter((k) => k !== 'perSecond' && k !== 'burst');
  if (extra.length) fail(where, `rateLimit has unknown fields (${extra.join(', ')})`, value);
  if (typeof r.perSecond !== 'number' || !(r.perSecond >= 0) || !Number.isFinite(r.perSecond))
    fail(where, 'rateLimit.perSecond must be a number ≥ 0', r.perSecond);
  if (!Number.isInteger(r.burst) || (r.burst as number) < 1)
    fail(where, 'rateLimit.burst must be an integer ≥ 1', r.burst);
  return { perSecond: r.perSecond, burst: r.burst as number };
}

function checkEntry(value: unknown, where: string): ApiKeyEntry {
  const e = value as Partial<ApiKeyEntry> | null;
  if (typeof e !== 'object' || e === null || Array.isArray(e))
    fail(where, 'an entry must be an object {"id", "scopes", "sha256"}', value);
  const unknown = Object.keys(e).filter((k) => !ENTRY_FIELDS.has(k));
  if (unknown.length) fail(where, `unknown fields (${unknown.join(', ')}); known: ${[...ENTRY_FIELDS].join(', ')}`, e);
  if (typeof e.id !== 'string' || !KEY_ID.test(e.id))
    fail(where, 'id must be 1-64 letters, digits or hyphens (no underscore)', e.id);
  const scopes = parseScopes(e.scopes, where);
  if (typeof e.sha256 !== 'string' || !SHA256_HEX.test(e.sha256))
    fail(where, 'sha256 must be 64 lower-case hex digits (`advsieve keys create` prints it)', e.sha256);
  const rateLimit = e.rateLimit === undefined ? undefined : checkRateLimit(e.rateLimit, where);
  return { id: e.id, scopes, sha256: e.sha256, ...(rateLimit ? { rateLimit } : {}) };
}

/** Parses one key list (the file's text or the inline variable's), naming `source` and the entry in errors. */
export function parseApiKeys(text: string, source: string): ApiKeyEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ApiKeyConfigError(`${source}: not JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(parsed)) fail(source, 'must be a JSON array of key entries', parsed);
  return parsed.map((entry, i) => {
    const id = (entry as { id?: unknown } | null)?.id;
    return checkEntry(entry, `${source}: entry ${i}${typeof id === 'string' ? ` (id '${id}')` : ''}`);
  });
}

type Env = Readonly<Record<string, string | undefined>>;

/** The keys configured by ADVSIEVE_API_KEYS_FILE and ADVSIEVE_API_KEYS together; ids must be unique. */
export function apiKeysFromEnv(env: Env): ApiKeyEntry[] {
  const entries: ApiKeyEntry[] = [];
  const file = env.ADVSIEVE_API_KEYS_FILE;
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new ApiKeyConfigError(`ADVSIEVE_API_KEYS_FILE ${file}: cannot read (${(err as Error).message})`);
    }
    entries.push(...parseApiKeys(text, `ADVSIEVE_API_KEYS_FILE ${file}`));
  }
  if (env.ADVSIEVE_API_KEYS) entries.push(...parseApiKeys(env.ADVSIEVE_API_KEYS, 'ADVSIEVE_API_KEYS'));
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.id)) throw new ApiKeyConfigError(`API key id '${e.id}' is configured twice`);
    seen.add(e.id);
  }
  return entries;
}

/** The configured keys, recognising a presented key. */
export class ApiKeyStore {
  private readonly byId: ReadonlyMap<string, { entry: ApiKeyEntry; hash: Buffer; principal: Principal }>;

  constructor(entries: readonly ApiKeyEntry[]) {
    this.byId = new Map(
      entries.map((entry) => [
        entry.id,
        {
          entry,
          hash: Buffer.from(entry.sha256, 'hex'),
          principal: { keyId: entry.id, scopes: new Set(entry.scopes) },
        },
      ]),
    );
  }

  /** Whether any key is configured: without one, the API is open. */
  get enabled(): boolean {
    return this.byId.size > 0;
  }

  entry(keyId: string): ApiKeyEntry | undefined {
    return this.byId.get(keyId)?.entry;
  }

  /** The principal of a presented key, or undefined when it is not a configured key. */
  verify(key: string): Principal | undefined {
    const id = keyIdOf(key);
    const known = id === undefined ? undefined : this.byId.get(id);
    if (!known) return undefined;
    const presented = createHash('sha256').update(key, 'utf8').digest();
    return timingSafeEqual(presented, known.hash) ? known.principal : undefined;
  }
}
