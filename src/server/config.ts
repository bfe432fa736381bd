/**
 * The service's configuration, from environment variables (docs/api.md has the table). Every value
 * is checked when read, and a bad one stops the start with the variable's name, what was expected
 * and what came — a typo in a deployment fails loudly instead of serving with a default.
 */
import * as os from 'os';
import * as path from 'path';
import { DEFAULT_COMMIT_LIMITS } from '../audit/groupCommit';
import type { AuditConfig } from '../audit/openAuditLog';
import type { JobsConfig } from '../jobs/jobsConfig';
import { apiKeysFromEnv } from '../gateway/apiKeys';
import type { GatewayConfig } from '../gateway/gateway';
import { apqEnabled } from '../gateway/persistedQueries';
import { DEFAULT_QUERY_LIMITS } from '../gateway/queryLimits';
import type { RedisFailurePolicy } from '../gateway/redisRateLimit';
import { openFileLimit } from '../util/openFileLimit';
import { defaultModelDir, PACKAGE_ROOT } from '../util/paths';

export interface ServerConfig {
  readonly port: number;
  /** Interface to listen on; undefined: all of them. */
  readonly host: string | undefined;
  /** The default model: what requests that name no model get. */
  readonly modelDir: string;
  /** More models served beside it (ADVSIEVE_MODELS), each with its own engine and calibration. */
  readonly extraModelDirs: readonly string[];
  /** The default model's calibration.json; undefined: the model directory's. */
  readonly calibrationFile: string | undefined;
  readonly production: boolean;
  /** Largest uploaded file, and largest image decoded from base64, in bytes. */
  readonly maxFileBytes: number;
  /** Most files in one multipart request. */
  readonly maxFiles: number;
  /** Most images in one request, counting every image argument of every field. */
  readonly maxImages: number;
  /** Largest JSON request body (base64 images travel in it), in bytes. */
  readonly maxBodyBytes: number;
  /** Largest width × height decoded (decompression bombs are refused from the header). */
  readonly maxPixels: number;
  /** Default false-positive rate of the thresholds, and the loosest clients may ask for; undefined: the calibration's. */
  readonly targetFpr: number | undefined;
  /** The highest targetFpr a client may ask for (src/server/thresholdPolicy.ts). */
  readonly maxTargetFpr: number;
  /** With no API keys configured, may clients ask for a targetFpr below the operator's? */
  readonly allowLooserTargetFpr: boolean;
  /** Classes listed in each prediction's `top`. */
  readonly topK: number;
  readonly attacksEnabled: boolean;
  /** Cap on an attack's iterations (PGD, CW) or queries (Square). */
  readonly attackMaxSteps: number;
  /** Attacks waiting for the one running; more are refused as OVERLOADED. */
  readonly attackMaxWaiting: number;
  /** Engine settings; undefined: the engine's per-backend defaults. */
  readonly workers: number | undefined;
  readonly maxBatch: number | undefined;
  readonly maxDelayMs: number | undefined;
  readonly maxQueue: number | undefined;
  /** Longest a graceful shutdown waits for requests in flight before closing their connections. */
  readonly shutdownTimeoutMs: number;
  /** A request's deadline, from its arrival: receiving, decoding, queueing and inference (DEADLINE_EXCEEDED). */
  readonly requestTimeoutMs: number;
  /**
   * How long an idle keep-alive connection is kept open. Longer than the idle timeouts of the load
   * balancers and clients in front (HAProxy's pool, undici's 4 s, cloud balancers' 60 s): whichever
   * side closes an idle connection first must be the client, or a request sent on it as the server
   * closes fails (EPIPE / ECONNRESET) without ever reaching the service.
   */
  readonly keepAliveTimeoutMs: number;
  /** Connections this process holds at most (src/server/connectionGuard.ts); default from its open-file limit. */
  readonly maxConnections: number;
  /** Connections one remote address holds at most; 0: no cap (behind a balancer that opens more). */
  readonly maxConnectionsPerAddress: number;
  /** GraphQL requests in flight at most; beyond, OVERLOADED before the body is read (bounds memory). */
  readonly maxConcurrentRequests: number;
  /** Bytes of request bodies in flight at most, by Content-Length; beyond, OVERLOADED (a global memory bound). */
  readonly maxInflightBytes: number;
  /** One client's share of the requests in flight (per API key; per address only when set explicitly). */
  readonly maxConcurrentRequestsPerClient: number;
  /** One client's share of the body bytes in flight, and the most one request may be charged. */
  readonly maxInflightBytesPerClient: number;
  /** Images decoded at once, across all requests: the decode processes (libvips' working memory is per decode). */
  readonly decodeConcurrency: number;
  /** Longest one image's decode may take (less when its request's deadline is nearer): DECODE_TIMEOUT. */
  readonly decodeTimeoutMs: number;
  /** Files of several frames or pages: refused (MULTI_FRAME_IMAGE), or every frame screened as a view. */
  readonly multiFrame: 'refuse' | 'screen';
  /** With multiFrame 'screen': most frames per file (more: IMAGE_TOO_COMPLEX). */
  readonly maxFrames: number;
  /** Tests only: images of the fault patterns kill their worker (src/engine/faultInjection.ts); refused in production. */
  readonly faultInjection: boolean;
  /** The audit log of verdicts: backend, durability, retention (src/audit/). */
  readonly audit: AuditConfig;
  /** Who gets in and how much they may ask: API keys, rate limits, query limits, trusted documents, /metrics (src/gateway/). */
  readonly gateway: GatewayConfig;
  /** Bulk screening jobs on Redis (src/jobs/): off without REDIS_URL. */
  readonly jobs: JobsConfig;
}

type Env = Readonly<Record<string, string | undefined>>;

export class ConfigError extends Error {
  constructor(variable: string, expected: string, got: string) {
    super(`${variable} must be ${expected}; got '${got}'`);
    this.name = 'ConfigError';
  }
}

function integer(env: Env, name: string, min: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new ConfigError(name, `an integer ≥ ${min}`, raw);
  return n;
}

function fraction(env: Env, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!(n > 0 && n < 1)) throw new ConfigError(name, 'a number in (0, 1)', raw);
  return n;
}

function flag(env: Env, name: string): boolean | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(name, '1/true/yes/on or 0/false/no/off', raw);
}

const MiB = 1024 * 1024;

/**
 * The audit log's settings. Retention defaults to 90 days so that a busy service's log cannot fill
 * its disk unnoticed (and then refuse every request, since unrecorded verdicts are not sent); 0
 * keeps rows forever.
 */
function auditConfig(env: Env): AuditConfig {
  const sync = (env.ADVSIEVE_AUDIT_SYNC || 'full').toLowerCase();
  if (sync !== 'full' && sync !== 'normal')
    throw new ConfigError('ADVSIEVE_AUDIT_SYNC', "'full' or 'normal'", env.ADVSIEVE_AUDIT_SYNC ?? '');
  const retentionDays = integer(env, 'ADVSIEVE_AUDIT_RETENTION_DAYS', 0) ?? 90;
  return {
    enabled: flag(env, 'ADVSIEVE_AUDIT') ?? true,
    sqliteFile: path.resolve(env.ADVSIEVE_AUDIT_DB || path.join(PACKAGE_ROOT, 'data', 'audit.sqlite')),
    databaseUrl: env.DATABASE_URL || undefined,
    sync,
    retentionDays: retentionDays === 0 ? undefined : retentionDays,
    storeImages: flag(env, 'ADVSIEVE_AUDIT_STORE_IMAGES') ?? false,
    poolSize: integer(env, 'ADVSIEVE_AUDIT_PG_POOL', 1) ?? 4,
    // A commit that takes longer fails its requests (AUDIT_UNAVAILABLE) instead of holding them, and
    // too much waiting is refused at once: a stalled database must not stall every screen (src/audit/groupCommit.ts).
    timeoutMs: integer(env, 'ADVSIEVE_AUDIT_TIMEOUT_MS', 1) ?? DEFAULT_COMMIT_LIMITS.timeoutMs,
    maxWaitingRows: integer(env, 'ADVSIEVE_AUDIT_MAX_WAITING_ROWS', 1) ?? DEFAULT_COMMIT_LIMITS.maxWaitingRows,
    maxWaitingBytes: integer(env, 'ADVSIEVE_AUDIT_MAX_WAITING_BYTES', 1) ?? DEFAULT_COMMIT_LIMITS.maxWaitingBytes,
  };
}

/**
 * Bulk screening jobs (src/jobs/jobsConfig.ts says what each setting is for). The lock's default
 * is BullMQ's 30 s: renewed every 15 s, so a busy event loop never loses a batch it is screening;
 * a killed consumer's batch waits that long, once, for another.
 */
function jobsConfig(env: Env): JobsConfig {
  const lockMs = integer(env, 'ADVSIEVE_JOB_LOCK_MS', 1000) ?? 30_000;
  const dirs = (env.ADVSIEVE_JOB_DIRS ?? '')
    .split(',')
    .map((d) => d.trim())
    .filter((d) => d !== '');
  if (dirs.some((d) => !path.isAbsolute(d)))
    throw new ConfigError('ADVSIEVE_JOB_DIRS', 'absolute directories separated by commas', env.ADVSIEVE_JOB_DIRS ?? '');
  return {
    redisUrl: env.REDIS_URL || undefined,
    consume: flag(env, 'ADVSIEVE_JOB_CONSUMER') ?? true,
    dirs: dirs.map((d) => path.resolve(d)),
    spoolDir: path.resolve(env.ADVSIEVE_JOB_SPOOL || path.join(PACKAGE_ROOT, 'data', 'job-spool')),
    batchSize: integer(env, 'ADVSIEVE_JOB_BATCH', 1) ?? 64,
    concurrency: integer(env, 'ADVSIEVE_JOB_CONCURRENCY', 1),
    lockMs,
    stalledIntervalMs: integer(env, 'ADVSIEVE_JOB_STALLED_INTERVAL_MS', 500) ?? lockMs,
    maxStalledCount: integer(env, 'ADVSIEVE_JOB_MAX_STALLED', 1) ?? 2,
    maxImages: integer(env, 'ADVSIEVE_JOB_MAX_IMAGES', 1) ?? 1_000_000,
    ttlSeconds: integer(env, 'ADVSIEVE_JOB_TTL_SECONDS', 60) ?? 7 * 24 * 3600,
  };
}

/**
 * The gateway's settings. Rate limits apply to API keys only: without keys every caller is
 * anonymous, and behind a proxy every caller would share the proxy's address (see docs/api.md).
 */
function gatewayConfig(env: Env, production: boolean): GatewayConfig {
  const limits = DEFAULT_QUERY_LIMITS;
  return {
    apiKeys: apiKeysFromEnv(env),
    rateLimit: {
      perSecond: integer(env, 'ADVSIEVE_RATE_LIMIT_PER_SECOND', 0) ?? 100,
      // Two of the largest requests the images limit admits (256 images + the request's own token).
      burst: integer(env, 'ADVSIEVE_RATE_LIMIT_BURST', 1) ?? 512,
    },
    // Body bytes per key: what bounds one key's share of the main thread (reading, parsing and
    // decoding base64 JSON cost ~15 ms per MB here). The burst is one client's in-flight share.
    redisUrl: env.REDIS_URL || undefined,
    redisFailure: redisFailurePolicy(env),
    bodyRateLimit: {
      perSecond: integer(env, 'ADVSIEVE_RATE_LIMIT_BYTES_PER_SECOND', 0) ?? 8 * MiB,
      burst: integer(env, 'ADVSIEVE_RATE_LIMIT_BYTES_BURST', 1) ?? 64 * MiB,
    },
    queryLimits: {
      maxDepth: integer(env, 'ADVSIEVE_MAX_DEPTH', 1) ?? limits.maxDepth,
      maxCost: integer(env, 'ADVSIEVE_MAX_COST', 1) ?? limits.maxCost,
      maxAliases: integer(env, 'ADVSIEVE_MAX_ALIASES', 0) ?? limits.maxAliases,
      maxDirectives: integer(env, 'ADVSIEVE_MAX_DIRECTIVES', 0) ?? limits.maxDirectives,
      maxTokens: integer(env, 'ADVSIEVE_MAX_TOKENS', 1) ?? limits.maxTokens,
      maxWork: integer(env, 'ADVSIEVE_MAX_WORK', 1) ?? limits.maxWork,
    },
    maxBatchedOperations: integer(env, 'ADVSIEVE_MAX_BATCHED_OPERATIONS', 1) ?? 8,
    trustedDocumentsFile: env.ADVSIEVE_TRUSTED_DOCUMENTS || undefined,
    apq: apqEnabled(flag(env, 'ADVSIEVE_APQ'), production, Boolean(env.ADVSIEVE_TRUSTED_DOCUMENTS)),
    metrics: metricsEndpoint(env),
  };
}

/** ADVSIEVE_RATE_LIMIT_REDIS_FAILURE: what a charge does when Redis does not answer (src/gateway/redisRateLimit.ts). */
function redisFailurePolicy(env: Env): RedisFailurePolicy {
  const raw = (env.ADVSIEVE_RATE_LIMIT_REDIS_FAILURE || 'local').toLowerCase();
  if (raw !== 'local' && raw !== 'refuse')
    throw new ConfigError(
      'ADVSIEVE_RATE_LIMIT_REDIS_FAILURE',
      "'local' or 'refuse'",
      env.ADVSIEVE_RATE_LIMIT_REDIS_FAILURE ?? '',
    );
  return raw;
}

/** ADVSIEVE_METRICS: `on`, `off`, or a port for a listener of its own (on ADVSIEVE_METRICS_HOST, loopback by default). */
function metricsEndpoint(env: Env): GatewayConfig['metrics'] {
  const raw = (env.ADVSIEVE_METRICS || 'on').toLowerCase();
  if (raw === 'on' || raw === 'off') return raw;
  const port = Number(raw);
  if (!(Number.isInteger(port) && port >= 1 && port <= 65535))
    throw new ConfigError('ADVSIEVE_METRICS', "'on', 'off' or a port number (1-65535)", env.ADVSIEVE_METRICS ?? '');
  return { port, host: env.ADVSIEVE_METRICS_HOST || '127.0.0.1' };
}

/**
 * One client's share of admission (src/server/admission.ts). With API keys configured, a key's
 * share is an eighth of the byte budget and a quarter of the places by default, so that no key
 * alone can fill either. Without keys the default is no share at all (the global limits): the
 * service would see a proxy's address as every client's, as for rate limits; set the variables to
 * share by address. A share is never above the global limit.
 */
function clientShares(
  env: Env,
  keyed: boolean,
  maxConcurrentRequests: number,
  maxInflightBytes: number,
): Pick<ServerConfig, 'maxConcurrentRequestsPerClient' | 'maxInflightBytesPerClient'> {
  const requests =
    integer(env, 'ADVSIEVE_MAX_CONCURRENT_REQUESTS_PER_CLIENT', 1) ??
    (keyed ? Math.ceil(maxConcurrentRequests / 4) : maxConcurrentRequests);
  const bytes =
    integer(env, 'ADVSIEVE_MAX_INFLIGHT_BYTES_PER_CLIENT', 1024) ??
    (keyed ? Math.floor(maxInflightBytes / 8) : maxInflightBytes);
  return {
    maxConcurrentRequestsPerClient: Math.min(requests, maxConcurrentRequests),
    maxInflightBytesPerClient: Math.min(bytes, maxInflightBytes),
  };
}

/**
 * Connections held at most, in all and per remote address. The default total leaves a fifth of the
 * open-file limit (at least 256 descriptors) to the process's own files, pipes and database and
 * Redis connections, and stops at 16 384 (~9 KB each held: ~150 MB). The default per address is a
 * quarter of it, at most 1 024: above what a balancer needs in front of a replica that admits
 * ADVSIEVE_MAX_CONCURRENT_REQUESTS requests at a time.
 */
export function connectionLimits(
  env: Env,
  fileLimit = openFileLimit(),
): Pick<ServerConfig, 'maxConnections' | 'maxConnectionsPerAddress'> {
  const maxConnections =
    integer(env, 'ADVSIEVE_MAX_CONNECTIONS', 1) ??
    Math.max(64, Math.min(16_384, fileLimit - Math.max(256, Math.floor(fileLimit / 5))));
  const perAddress =
    integer(env, 'ADVSIEVE_MAX_CONNECTIONS_PER_ADDRESS', 0) ?? Math.min(1024, Math.floor(maxConnections / 4));
  return { maxConnections, maxConnectionsPerAddress: Math.min(perAddress, maxConnections) };
}

/** Deadlines, admission, decoding and fault injection (docs/api.md, "Holding under load and faults"). */
function resilienceConfig(
  env: Env,
  production: boolean,
  keyed: boolean,
): Pick<
  ServerConfig,
  | 'requestTimeoutMs'
  | 'keepAliveTimeoutMs'
  | 'maxConnections'
  | 'maxConnectionsPerAddress'
  | 'maxConcurrentRequests'
  | 'maxInflightBytes'
  | 'maxConcurrentRequestsPerClient'
  | 'maxInflightBytesPerClient'
  | 'decodeConcurrency'
  | 'faultInjection'
> {
  const faultInjection = flag(env, 'ADVSIEVE_FAULT_INJECTION') ?? false;
  if (production && faultInjection) {
    // A client could kill workers at will: never in a production deployment.
    throw new ConfigError(
      'ADVSIEVE_FAULT_INJECTION',
      'off when NODE_ENV=production',
      env.ADVSIEVE_FAULT_INJECTION ?? '',
    );
  }
  const maxConcurrentRequests = integer(env, 'ADVSIEVE_MAX_CONCURRENT_REQUESTS', 1) ?? 256;
  // 512 MiB: above the largest single request the default limits admit (64 files × 5 MiB).
  const maxInflightBytes = integer(env, 'ADVSIEVE_MAX_INFLIGHT_BYTES', 1024) ?? 512 * MiB;
  return {
    requestTimeoutMs: integer(env, 'ADVSIEVE_REQUEST_TIMEOUT_MS', 1) ?? 30_000,
    keepAliveTimeoutMs: integer(env, 'ADVSIEVE_KEEP_ALIVE_TIMEOUT_MS', 1) ?? 65_000,
    ...connectionLimits(env),
    maxConcurrentRequests,
    maxInflightBytes,
    ...clientShares(env, keyed, maxConcurrentRequests, maxInflightBytes),
    // One decode process each (~60 MB resident with sharp loaded): the cores, at most 8.
    decodeConcurrency: integer(env, 'ADVSIEVE_DECODE_CONCURRENCY', 1) ?? Math.min(8, os.availableParallelism()),
    faultInjection,
  };
}

/** Who sets the detection threshold: the operator (src/server/thresholdPolicy.ts). */
function thresholdConfig(env: Env): Pick<ServerConfig, 'targetFpr' | 'maxTargetFpr' | 'allowLooserTargetFpr'> {
  return {
    targetFpr: fraction(env, 'ADVSIEVE_TARGET_FPR'),
    maxTargetFpr: fraction(env, 'ADVSIEVE_MAX_TARGET_FPR') ?? 0.5,
    allowLooserTargetFpr: flag(env, 'ADVSIEVE_ALLOW_LOOSER_TARGET_FPR') ?? false,
  };
}

/** How images are decoded: the time budget and multi-frame files (docs/api.md, "Image policy"). */
function decodeConfig(env: Env): Pick<ServerConfig, 'decodeTimeoutMs' | 'multiFrame' | 'maxFrames'> {
  const multiFrame = (env.ADVSIEVE_MULTI_FRAME || 'refuse').toLowerCase();
  if (multiFrame !== 'refuse' && multiFrame !== 'screen')
    throw new ConfigError('ADVSIEVE_MULTI_FRAME', "'refuse' or 'screen'", env.ADVSIEVE_MULTI_FRAME ?? '');
  return {
    // CPU time (src/images/decodePool.ts): a 28×28 image decodes in a millisecond, a 40-megapixel JPEG in about a second.
    decodeTimeoutMs: integer(env, 'ADVSIEVE_DECODE_TIMEOUT_MS', 1) ?? 5000,
    multiFrame,
    maxFrames: integer(env, 'ADVSIEVE_MAX_FRAMES', 1) ?? 16,
  };
}

/**
 * ADVSIEVE_MODELS: the models served beside the default, comma-separated; each a directory, or the
 * id of one under the package's models/ (`nsfw-mobilenetv2` for models/nsfw-mobilenetv2/).
 */
export function modelList(env: Env): string[] {
  const raw = env.ADVSIEVE_MODELS;
  if (raw === undefined || raw.trim() === '') return [];
  const entries = raw.split(',').map((e) => e.trim());
  if (entries.some((e) => e === ''))
    throw new ConfigError('ADVSIEVE_MODELS', 'model directories or ids separated by single commas', raw);
  return entries.map((e) =>
    /[\\/]/.test(e) || e.startsWith('.') ? path.resolve(e) : path.join(PACKAGE_ROOT, 'models', e),
  );
}

export function configFromEnv(env: Env = process.env): ServerConfig {
  const production = env.NODE_ENV === 'production';
  const attacks = flag(env, 'ADVSIEVE_ATTACKS');
  if (production && attacks) {
    // The rule: red-teaming is never exposed by a production deployment.
    throw new ConfigError('ADVSIEVE_ATTACKS', 'off when NODE_ENV=production', env.ADVSIEVE_ATTACKS ?? '');
  }
  const gateway = gatewayConfig(env, production);
  return {
    port: integer(env, 'PORT', 0) ?? 4000,
    host: env.HOST || undefined,
    modelDir: env.ADVSIEVE_MODEL_DIR || defaultModelDir(),
    extraModelDirs: modelList(env),
    calibrationFile: env.ADVSIEVE_CALIBRATION || undefined,
    production,
    maxFileBytes: integer(env, 'ADVSIEVE_MAX_FILE_BYTES', 1) ?? 5 * MiB,
    maxFiles: integer(env, 'ADVSIEVE_MAX_FILES', 1) ?? 64,
    maxImages: integer(env, 'ADVSIEVE_MAX_IMAGES', 1) ?? 256,
    maxBodyBytes: integer(env, 'ADVSIEVE_MAX_BODY_BYTES', 1024) ?? 16 * MiB,
    maxPixels: integer(env, 'ADVSIEVE_MAX_PIXELS', 1) ?? 40_000_000,
    ...thresholdConfig(env),
    topK: integer(env, 'ADVSIEVE_TOP_K', 1) ?? 3,
    attacksEnabled: attacks ?? !production,
    attackMaxSteps: integer(env, 'ADVSIEVE_ATTACK_MAX_STEPS', 1) ?? 500,
    attackMaxWaiting: integer(env, 'ADVSIEVE_ATTACK_MAX_WAITING', 0) ?? 4,
    workers: integer(env, 'ADVSIEVE_WORKERS', 1),
    maxBatch: integer(env, 'ADVSIEVE_MAX_BATCH', 1),
    maxDelayMs: integer(env, 'ADVSIEVE_MAX_DELAY_MS', 0),
    maxQueue: integer(env, 'ADVSIEVE_MAX_QUEUE', 1),
    shutdownTimeoutMs: integer(env, 'ADVSIEVE_SHUTDOWN_TIMEOUT_MS', 0) ?? 30_000,
    ...resilienceConfig(env, production, gateway.apiKeys.length > 0),
    ...decodeConfig(env),
    audit: auditConfig(env),
    gateway,
    jobs: jobsConfig(env),
  };
}
