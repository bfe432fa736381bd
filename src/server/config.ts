/**
 * The service's configuration, from environment variables (docs/api.md has the table). Every value
 * is checked when read, and a bad one stops the start with the variable's name, what was expected
 * and what came — a typo in a deployment fails loudly instead of serving with a default.
 */
import { defaultModelDir } from '../util/paths';

export interface ServerConfig {
  readonly port: number;
  /** Interface to listen on; undefined: all of them. */
  readonly host: string | undefined;
  readonly modelDir: string;
  /** calibration.json; undefined: the model directory's. */
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
  /** Default false-positive rate of the thresholds; undefined: the calibration's. */
  readonly targetFpr: number | undefined;
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

export function configFromEnv(env: Env = process.env): ServerConfig {
  const production = env.NODE_ENV === 'production';
  const attacks = flag(env, 'ADVSIEVE_ATTACKS');
  if (production && attacks) {
    // The rule: red-teaming is never exposed by a production deployment.
    throw new ConfigError('ADVSIEVE_ATTACKS', 'off when NODE_ENV=production', env.ADVSIEVE_ATTACKS ?? '');
  }
  return {
    port: integer(env, 'PORT', 0) ?? 4000,
    host: env.HOST || undefined,
    modelDir: env.ADVSIEVE_MODEL_DIR || defaultModelDir(),
    calibrationFile: env.ADVSIEVE_CALIBRATION || undefined,
    production,
    maxFileBytes: integer(env, 'ADVSIEVE_MAX_FILE_BYTES', 1) ?? 5 * MiB,
    maxFiles: integer(env, 'ADVSIEVE_MAX_FILES', 1) ?? 64,
    maxImages: integer(env, 'ADVSIEVE_MAX_IMAGES', 1) ?? 256,
    maxBodyBytes: integer(env, 'ADVSIEVE_MAX_BODY_BYTES', 1024) ?? 16 * MiB,
    maxPixels: integer(env, 'ADVSIEVE_MAX_PIXELS', 1) ?? 40_000_000,
    targetFpr: fraction(env, 'ADVSIEVE_TARGET_FPR'),
    topK: integer(env, 'ADVSIEVE_TOP_K', 1) ?? 3,
    attacksEnabled: attacks ?? !production,
    attackMaxSteps: integer(env, 'ADVSIEVE_ATTACK_MAX_STEPS', 1) ?? 500,
    attackMaxWaiting: integer(env, 'ADVSIEVE_ATTACK_MAX_WAITING', 0) ?? 4,
    workers: integer(env, 'ADVSIEVE_WORKERS', 1),
    maxBatch: integer(env, 'ADVSIEVE_MAX_BATCH', 1),
    maxDelayMs: integer(env, 'ADVSIEVE_MAX_DELAY_MS', 0),
    maxQueue: integer(env, 'ADVSIEVE_MAX_QUEUE', 1),
    shutdownTimeoutMs: integer(env, 'ADVSIEVE_SHUTDOWN_TIMEOUT_MS', 0) ?? 30_000,
  };
}
