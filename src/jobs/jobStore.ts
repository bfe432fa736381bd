/**
 * Bulk screening jobs in Redis: the queue of their batches (BullMQ), and each job's record — its
 * settings, status and counts in one hash, its verdicts in another keyed by image index. A verdict
 * is written with its counts by one Lua script, which first takes back what an earlier write of the
 * same index counted: a batch screened again after its consumer stalled overwrites its verdicts and
 * counts nothing twice. Nothing here screens; src/jobs/jobConsumer.ts does.
 *
 * One queue per model (`queueName`): a consumer takes batches only from the queues of the models it
 * serves, so a batch waits for a consumer that can screen it instead of failing in one that cannot.
 * Consumers announce their models here (`announce`), so that a job no running consumer could
 * screen is refused when it is submitted (src/server/jobs.ts).
 *
 * Uploaded images are spooled by SHA-256 (src/jobs/spool.ts), possibly shared between jobs. A job
 * holds a reference to each distinct file from before its files are written until it completes, is
 * cancelled or expires (`release`); a file whose last reference goes is removed from the spool
 * (src/jobs/spoolCleanup.ts).
 */
import { randomUUID } from 'crypto';
import { Queue, type ConnectionOptions } from 'bullmq';
import IORedis from 'ioredis';
import type { AuditedResult } from '../audit/records';
import { redactedUrl } from '../util/redactedUrl';

/** The prefix of BullMQ's queues of batches, one a model; every replica and worker of a deployment uses the same ones. */
export const JOB_QUEUE = 'advsieve-screening';
const KEY = 'advsieve:job:';
/** Distinct spooled files of unfinished jobs -> how many such jobs hold each. */
const SPOOL_REFS = 'advsieve:spool:refs';
/** Ids of the jobs that hold spooled files (each one's files in KEY + id + ':files'). */
const SPOOL_JOBS = 'advsieve:spool:jobs';
/** A model's consumers: a sorted set of consumer ids, scored by when their announcement runs out (ms). */
const CONSUMERS = 'advsieve:consumers:';

/** A model's queue of batches (BullMQ refuses ':' in a name; a model id is a directory name). */
export function queueName(model: string): string {
  return `${JOB_QUEUE}.${encodeURIComponent(model)}`;
}

export type JobStatus = 'queued' | 'running' | 'completed' | 'cancelled';

/** What a job was asked to do, as submitted. */
export interface JobSettings {
  /** The model that screens it, and the settings read from `screen`'s options at submission. */
  readonly model: string;
  readonly targetFpr: number;
  readonly top: number;
  /** The submitting key's id and scopes (empty without keys): its jobs are its own. */
  readonly keyId: string | null;
  readonly scopes: readonly string[];
  /** The server-side directory screened (its real path, which consumers read), or null for uploaded images. */
  readonly directory: string | null;
  /**
   * The directory as the client named it (normalised), which is what clients are shown: the real
   * path may tell where an allowed root's links lead (another disk, a mount), which they were not given.
   */
  readonly requestedDirectory: string | null;
}

/** What a job was asked to do and how far it has got. */
export interface JobRecord extends JobSettings {
  readonly id: string;
  readonly status: JobStatus;
  readonly total: number;
  /** Images with a verdict; of them, flagged adversarial; images that could not be screened. */
  readonly screened: number;
  readonly flagged: number;
  readonly failed: number;
  readonly createdAt: Date;
  readonly finishedAt: Date | null;
}

/**
 * One unit of queue work: `items[i]` is the job's image `start + i` — a path relative to the job's
 * directory, an uploaded file's SHA-256 in the spool, or `!CODE` for an upload that could not be read.
 */
export interface BatchData {
  readonly jobId: string;
  readonly start: number;
  readonly items: readonly string[];
}

/** A stored verdict: `screen`'s result for one image (index = its place in the job), and its file. */
export type JobVerdict = AuditedResult & { readonly file?: string };

/**
 * Tries of a batch whose screening throws (Redis or the audit log away a moment), a second apart
 * then two; then its images fail with JOB_BATCH_FAILED (src/jobs/jobConsumer.ts).
 */
const BATCH_OPTIONS = { attempts: 3, backoff: { type: 'exponential', delay: 1000 } };

/*
 * KEYS: the job's hash, its verdicts. ARGV: ttl seconds, the time (ISO), then pairs of index and
 * verdict, each verdict prefixed by its kind: s screened clean, f screened flagged, x failed.
 * Returns images done, or -1 when the job is gone (expired, never existed).
 */
const RECORD_SCRIPT = `
local job, verdicts = KEYS[1], KEYS[2]
if redis.call('EXISTS', job) == 0 then return -1 end
local function count(kind, by)
  if kind == 'x' then redis.call('HINCRBY', job, 'failed', by) else redis.call('HINCRBY', job, 'screened', by) end
  if kind == 'f' then redis.call('HINCRBY', job, 'flagged', by) end
end
for i = 3, #ARGV, 2 do
  local old = redis.call('HGET', verdicts, ARGV[i])
  if old then count(string.sub(old, 1, 1), -1) end
  redis.call('HSET', verdicts, ARGV[i], ARGV[i + 1])
  count(string.sub(ARGV[i + 1], 1, 1), 1)
end
local s = redis.call('HMGET', job, 'screened', 'failed', 'total', 'status')
local done = tonumber(s[1]) + tonumber(s[2])
if s[4] == 'queued' then redis.call('HSET', job, 'status', 'running') end
if done >= tonumber(s[3]) and (s[4] == 'queued' or s[4] == 'running') then
  redis.call('HSET', job, 'status', 'completed', 'finishedAt', ARGV[2])
  redis.call('EXPIRE', job, ARGV[1])
  redis.call('EXPIRE', verdicts, ARGV[1])
end
return done`;

/* KEYS: the job's hash. ARGV: the time. Cancels a queued or running job; returns its status after. */
const CANCEL_SCRIPT = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status == 'queued' or status == 'running' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finishedAt', ARGV[1])
  return 'cancelled'
end
return status`;

/*
 * KEYS: the job's spooled files, SPOOL_REFS, SPOOL_JOBS. ARGV: the job's id. Gives back the job's
 * references; returns the files no unfinished job holds any more. A second call finds nothing.
 */
const RELEASE_SCRIPT = `
local freed = {}
for _, sha in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('HINCRBY', KEYS[2], sha, -1) <= 0 then
    redis.call('HDEL', KEYS[2], sha)
    table.insert(freed, sha)
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[1])
return freed`;

export interface NewJob extends JobSettings {
  /** Every image, in the job's order: see BatchData.items. */
  readonly items: readonly string[];
  /** The distinct spooled files among the items (SHA-256), which the job holds until it is finished. */
  readonly spooled?: readonly string[];
}

export class JobStore {
  private constructor(
    /** Commands of this process (records, verdicts); BullMQ's connections are its own. */
    readonly redis: IORedis,
    private readonly url: string,
    private readonly settings: { readonly batchSize: number; readonly ttlSeconds: number },
  ) {}

  private readonly queues = new Map<string, Queue<BatchData>>();

  /** The queue of a model's batches (opened on first use). */
  queue(model: string): Queue<BatchData> {
    let q = this.queues.get(model);
    if (!q) {
      q = new Queue<BatchData>(queueName(model), { connection: bullConnection(this.url) });
      this.queues.set(model, q);
    }
    return q;
  }

  /** Batches by state (waiting, active, delayed, failed) in each of these models' queues. */
  async batchCounts(models: readonly string[]): Promise<Array<[string, Record<string, number>]>> {
    return Promise.all(
      models.map(
        async (m) =>
          [m, await this.queue(m).getJobCounts('waiting', 'active', 'delayed', 'failed')] as [
            string,
            Record<string, number>,
          ],
      ),
    );
  }

  /** Says that consumer `id` screens these models' batches for the next `forMs` (renewed by the consumer). */
  async announce(id: string, models: readonly string[], forMs: number): Promise<void> {
    const now = Date.now();
    const m = this.redis.multi();
    for (const model of models)
      m.zremrangebyscore(CONSUMERS + model, '-inf', now).zadd(CONSUMERS + model, now + forMs, id);
    await m.exec();
  }

  /** A consumer stopping: its models no longer count it. */
  async withdraw(id: string, models: readonly string[]): Promise<void> {
    const m = this.redis.multi();
    for (const model of models) m.zrem(CONSUMERS + model, id);
    await m.exec();
  }

  /** Consumers whose announcement for the model has not run out. */
  async consumersOf(model: string): Promise<number> {
    return this.redis.zcount(CONSUMERS + model, Date.now(), '+inf');
  }

  /** Connects to REDIS_URL; fails (naming the URL without its password) when Redis does not answer. */
  static async open(url: string, settings: { batchSize: number; ttlSeconds: number }): Promise<JobStore> {
    const redis = new IORedis(url, { maxRetriesPerRequest: 3, lazyConnect: true });
    try {
      await redis.connect();
    } catch (err) {
      redis.disconnect();
      throw new Error(`Redis at ${redactedUrl(url, 'REDIS_URL')} does not answer: ${(err as Error).message}`, {
        cause: err,
      });
    }
    redis.defineCommand('recordVerdicts', { numberOfKeys: 2, lua: RECORD_SCRIPT });
    redis.defineCommand('cancelJob', { numberOfKeys: 1, lua: CANCEL_SCRIPT });
    redis.defineCommand('releaseJob', { numberOfKeys: 3, lua: RELEASE_SCRIPT });
    return new JobStore(redis, url, settings);
  }

  /**
   * Records the job and its references to spooled files, then writes the files (`writeSpooled`:
   * after the references, so that no release in between can remove a file this job is about to
   * use), then queues its batches; a job of no images is completed at once.
   */
  async submit(job: NewJob, writeSpooled?: () => Promise<unknown>): Promise<JobRecord> {
    const id = randomUUID();
    const now = new Date().toISOString();
    const total = job.items.length;
    const key = KEY + id;
    await this.redis
      .multi()
      .hset(key, {
        status: total === 0 ? 'completed' : 'queued',
        model: job.model,
        targetFpr: String(job.targetFpr),
        top: String(job.top),
        keyId: job.keyId ?? '',
        scopes: job.scopes.join(','),
        directory: job.directory ?? '',
        requestedDirectory: job.requestedDirectory ?? '',
        total: String(total),
        screened: '0',
        flagged: '0',
        failed: '0',
        createdAt: now,
        finishedAt: total === 0 ? now : '',
      })
      .expire(key, this.settings.ttlSeconds)
      .exec();
    const spooled = job.spooled ?? [];
    if (spooled.length) {
      const m = this.redis
        .multi()
        .sadd(`${key}:files`, ...spooled)
        .sadd(SPOOL_JOBS, id);
      for (const sha of spooled) m.hincrby(SPOOL_REFS, sha, 1);
      await m.exec();
    }
    try {
      await writeSpooled?.();
    } catch (err) {
      await this.redis.del(key);
      await this.release(id);
      throw err;
    }
    const size = this.settings.batchSize;
    const batches: Array<{ name: string; data: BatchData; opts: typeof BATCH_OPTIONS & { jobId: string } }> = [];
    for (let start = 0; start < total; start += size) {
      const data = { jobId: id, start, items: job.items.slice(start, start + size) };
      // A deterministic id per batch: a retried submission of the same batch is one queue entry.
      batches.push({ name: 'screen', data, opts: { ...BATCH_OPTIONS, jobId: `${id}_${start}` } });
    }
    const queue = this.queue(job.model);
    for (let i = 0; i < batches.length; i += 1000) await queue.addBulk(batches.slice(i, i + 1000));
    return (await this.get(id))!;
  }

  async get(id: string): Promise<JobRecord | undefined> {
    if (!isJobId(id)) return undefined;
    const h = await this.redis.hgetall(KEY + id);
    if (!h.status) return undefined;
    return {
      id,
      status: h.status as JobStatus,
      model: h.model,
      targetFpr: Number(h.targetFpr),
      top: Number(h.top),
      keyId: h.keyId || null,
      scopes: h.scopes ? h.scopes.split(',') : [],
      directory: h.directory || null,
      requestedDirectory: h.requestedDirectory || null,
      total: Number(h.total),
      screened: Number(h.screened),
      flagged: Number(h.flagged),
      failed: Number(h.failed),
      createdAt: new Date(h.createdAt),
      finishedAt: h.finishedAt ? new Date(h.finishedAt) : null,
    };
  }

  /**
   * Stores verdicts (each keyed by its index: a rerun overwrites) and their counts; completes the
   * job with its last image. Returns the job's images done, or -1 when the job is gone.
   */
  async record(jobId: string, verdicts: readonly JobVerdict[]): Promise<number> {
    const args: string[] = [String(this.settings.ttlSeconds), new Date().toISOString()];
    for (const v of verdicts) {
      const kind = v.error ? 'x' : v.detection?.adversarial ? 'f' : 's';
      args.push(String(v.index), kind + JSON.stringify(v));
    }
    const redis = this.redis as IORedis & {
      recordVerdicts(job: string, verdicts: string, ...args: string[]): Promise<number>;
    };
    return redis.recordVerdicts(KEY + jobId, `${KEY + jobId}:verdicts`, ...args);
  }

  /** The verdicts of images [from, from + count) that have one, in index order. */
  async verdicts(jobId: string, from: number, count: number): Promise<JobVerdict[]> {
    if (count <= 0) return [];
    const indices = Array.from({ length: count }, (_, i) => String(from + i));
    const raw = await this.redis.hmget(`${KEY + jobId}:verdicts`, ...indices);
    return raw.flatMap((r) => (r === null ? [] : [JSON.parse(r.slice(1)) as JobVerdict]));
  }

  /** Cancels a queued or running job (its batches still queued are skipped); its status after, or undefined if unknown. */
  async cancel(jobId: string): Promise<JobStatus | undefined> {
    const redis = this.redis as IORedis & { cancelJob(job: string, now: string): Promise<string | null> };
    const status = await redis.cancelJob(KEY + jobId, new Date().toISOString());
    if (status === 'cancelled') {
      await this.redis.expire(KEY + jobId, this.settings.ttlSeconds);
      await this.redis.expire(`${KEY + jobId}:verdicts`, this.settings.ttlSeconds);
    }
    return (status ?? undefined) as JobStatus | undefined;
  }

  /**
   * Gives back a finished job's references to spooled files (a no-op for a job without, or the
   * second time); returns the files that no unfinished job holds any more, for the caller to remove.
   */
  async release(jobId: string): Promise<string[]> {
    const redis = this.redis as IORedis & {
      releaseJob(files: string, refs: string, jobs: string, id: string): Promise<string[]>;
    };
    return redis.releaseJob(`${KEY + jobId}:files`, SPOOL_REFS, SPOOL_JOBS, jobId);
  }

  /** Whether an unfinished job holds this spooled file. */
  async spoolReferenced(sha256: string): Promise<boolean> {
    return (await this.redis.hexists(SPOOL_REFS, sha256)) === 1;
  }

  /**
   * Jobs that still hold spooled files though they are finished: expired (their record gone),
   * or completed or cancelled by a process that stopped before it released them.
   */
  async finishedHoldingFiles(): Promise<string[]> {
    const ids = await this.redis.smembers(SPOOL_JOBS);
    if (ids.length === 0) return [];
    const p = this.redis.pipeline();
    for (const id of ids) p.hget(KEY + id, 'status');
    const statuses = (await p.exec())!.map(([, s]) => s as string | null);
    return ids.filter((_, i) => statuses[i] === null || statuses[i] === 'completed' || statuses[i] === 'cancelled');
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

export function isJobId(id: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id);
}

/**
 * BullMQ's connection settings for a URL: its blocking commands need ioredis to retry forever
 * (maxRetriesPerRequest null), as its documentation requires of a Worker's connection.
 */
export function bullConnection(url: string): ConnectionOptions {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    tls: u.protocol === 'rediss:' ? {} : undefined,
    maxRetriesPerRequest: null,
  };
}
