/**
 * The settings of bulk screening jobs (src/jobs/), read from the environment by
 * src/server/config.ts's jobsConfig (docs/api.md, "Jobs", has the table). Jobs exist only with
 * REDIS_URL: the queue (BullMQ) and the jobs' counts and verdicts live in Redis.
 */
export interface JobsConfig {
  /** REDIS_URL; undefined: no jobs (their fields answer JOBS_UNAVAILABLE), the rest of the service as before. */
  readonly redisUrl: string | undefined;
  /** Whether this process takes work from the queue (ADVSIEVE_JOB_CONSUMER; `advsieve worker` always does). */
  readonly consume: boolean;
  /**
   * The server-side roots a job may name a directory under (ADVSIEVE_JOB_DIRS, comma-separated),
   * resolved; empty: no directory jobs, uploads only.
   */
  readonly dirs: readonly string[];
  /**
   * Where uploaded images wait between submission and screening (ADVSIEVE_JOB_SPOOL), one file per
   * distinct content, named by its SHA-256: every replica and worker must see the same directory.
   */
  readonly spoolDir: string;
  /** Images per unit of queue work (ADVSIEVE_JOB_BATCH): an engine batch by default. */
  readonly batchSize: number;
  /**
   * Batches one consumer screens at once (ADVSIEVE_JOB_CONCURRENCY); undefined: four per engine
   * worker — one running, the next queued, two being read, recorded or stored (bench:jobs: 2 per
   * worker left the engine idle while the main thread read and recorded).
   */
  readonly concurrency: number | undefined;
  /**
   * How long a consumer's claim on a batch lasts unrenewed (ADVSIEVE_JOB_LOCK_MS; BullMQ renews it
   * at half that): a consumer killed mid-batch leaves it to another this long after its last renewal,
   * at the next stalled check (every ADVSIEVE_JOB_STALLED_INTERVAL_MS).
   */
  readonly lockMs: number;
  readonly stalledIntervalMs: number;
  /** Batches whose consumer died this many times are given up (their images fail with JOB_BATCH_FAILED). */
  readonly maxStalledCount: number;
  /** Most images in one job (ADVSIEVE_JOB_MAX_IMAGES); more: PAYLOAD_TOO_LARGE at submission. */
  readonly maxImages: number;
  /** How long a finished job's status and verdicts are kept in Redis (ADVSIEVE_JOB_TTL_SECONDS). */
  readonly ttlSeconds: number;
}
