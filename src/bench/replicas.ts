/**
 * `npm run bench:replicas`: images per second through HAProxy to three replicas sharing Redis (the
 * rate limits of an API key) against one replica spoken to directly, at the same client
 * concurrency, with the same `screen` requests. Every request carries an API key, so every request
 * pays its charges in Redis; the audit log is shared PostgreSQL when DATABASE_URL is set, else each
 * replica records into its own temporary SQLite file. Redis and HAProxy are started here (Debian's
 * redis-server and haproxy) unless REDIS_URL names a Redis. Prints a table, then one JSON object as
 * the last line.
 *
 * What it compares: the same engine workers and decode processes in total on both sides — by
 * default three replicas of 1 worker and 1 decode process each against one replica of 3 and 3 — so
 * that the ratio shows what three processes, the proxy hop and the shared state cost, not a
 * difference in how many threads compete for the cores. On a machine with fewer cores than that
 * (2 here), both sides are oversubscribed alike; the single replica with one worker per core is
 * printed too, so that the fair comparison's handicap, if any, is visible. Job consumers are off on
 * every side (ADVSIEVE_JOB_CONSUMER=off): this measures `screen`. Each side's CPU seconds per 1000
 * images are read from /proc during its measurement — the services' main threads (HTTP, GraphQL,
 * the audit log), their other threads (engine workers, mostly), their decode processes, HAProxy,
 * Redis and this client — to show where a loss goes.
 *
 * Options (environment): BENCH_SECONDS (per measurement, default 5), BENCH_WARMUP_SECONDS (load
 * before each measurement, default 15), BENCH_CONCURRENCY (default 16), BENCH_IMAGES_PER_REQUEST
 * (default 8), BENCH_REPLICA_WORKERS and BENCH_REPLICA_DECODE (each replica's engine workers and
 * decode processes, default 1 and 1), BENCH_SINGLE_WORKERS and BENCH_SINGLE_DECODE (the single
 * replica's, default three times the replica's), BENCH_BASELINE (1 to also measure the single
 * replica with the service's defaults, one worker and one decode process per core; default 1).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PACKAGE_ROOT } from '../util/paths';
import { startHaproxy } from './haproxy';
import { closedLoop, fixtureBytes, LoadFigures, round, screenBodies, Service, startService, stopService } from './load';
import { printTable } from './measure';
import { cpuSeconds, PROC_CPU } from './processCpu';
import { startRedis } from './redisServer';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const PER_REQUEST = Number(process.env.BENCH_IMAGES_PER_REQUEST ?? 8);
const REPLICAS = 3;
/**
 * Long enough for every worker of every replica to have run its first batches: with 3 s, three
 * fresh replicas on a loaded 2-core machine gave 25 images/s, with 15 s 176 (2026-12-03).
 */
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 15);
const REPLICA_WORKERS = Number(process.env.BENCH_REPLICA_WORKERS ?? 1);
const REPLICA_DECODE = Number(process.env.BENCH_REPLICA_DECODE ?? 1);
const SINGLE_WORKERS = Number(process.env.BENCH_SINGLE_WORKERS ?? REPLICAS * REPLICA_WORKERS);
const SINGLE_DECODE = Number(process.env.BENCH_SINGLE_DECODE ?? REPLICAS * REPLICA_DECODE);
const BASELINE = process.env.BENCH_BASELINE !== '0';
const CORES = os.availableParallelism();

/** A key made by the CLI with a limit far above the load: every request is charged, none refused. */
function keyFile(dir: string): { key: string; file: string } {
  const out = execFileSync(
    process.execPath,
    [path.join(PACKAGE_ROOT, 'bin', 'advsieve.js'), 'keys', 'create', '--id', 'bench', '--scopes', 'screen', '--json'],
    { encoding: 'utf8' },
  );
  const made = JSON.parse(out) as { key: string; entry: object };
  const file = path.join(dir, 'keys.json');
  const entry = { ...made.entry, rateLimit: { perSecond: 1_000_000, burst: 1_000_000 } };
  fs.writeFileSync(file, JSON.stringify([entry]));
  return { key: made.key, file };
}

/** CPU seconds per 1000 images by part, during a measurement. */
type CpuPer1000 = Record<'main' | 'engine' | 'decode' | 'haproxy' | 'redis' | 'client', number>;
interface Side {
  readonly figures: LoadFigures;
  readonly cpu: CpuPer1000 | undefined;
  /** The 1-minute load average when the measurement ended. */
  readonly load: number;
}

function cpuNow(services: readonly Service[], haproxy: number | undefined, redis: number | undefined) {
  const s = services.map((x) => cpuSeconds(x.proc.pid));
  const client = process.cpuUsage();
  return {
    main: s.reduce((a, x) => a + x.main, 0),
    engine: s.reduce((a, x) => a + x.threads, 0),
    decode: s.reduce((a, x) => a + x.children, 0),
    haproxy: cpuSeconds(haproxy).main + cpuSeconds(haproxy).threads,
    redis: cpuSeconds(redis).main + cpuSeconds(redis).threads,
    client: (client.user + client.system) / 1e6,
  };
}

/** Load at `port`; CPU read from the end of the warm-up to the end of the measurement. */
async function measure(
  port: number,
  bodies: readonly Buffer[],
  key: string,
  procs: { services: readonly Service[]; haproxy?: number; redis?: number },
): Promise<Side> {
  let before: ReturnType<typeof cpuNow> | undefined;
  const timer = setTimeout(() => (before = cpuNow(procs.services, procs.haproxy, procs.redis)), WARMUP_SECONDS * 1000);
  const figures = await closedLoop(port, bodies, CONCURRENCY, {
    seconds: SECONDS,
    warmupSeconds: WARMUP_SECONDS,
    imagesPerRequest: PER_REQUEST,
    headers: { authorization: `Bearer ${key}` },
  });
  clearTimeout(timer);
  const after = cpuNow(procs.services, procs.haproxy, procs.redis);
  const images = figures.imagesPerSec * SECONDS;
  const cpu =
    PROC_CPU && before && images > 0
      ? (Object.fromEntries(
          Object.entries(after).map(([k, v]) => [k, ((v - before![k as keyof CpuPer1000]) / images) * 1000]),
        ) as CpuPer1000)
      : undefined;
  return { figures, cpu, load: os.loadavg()[0] };
}

async function single(
  env: Record<string, string>,
  workers: number,
  decode: number,
  bodies: readonly Buffer[],
  key: string,
  redis?: number,
): Promise<Side> {
  const service = await startService({
    ...env,
    ADVSIEVE_WORKERS: String(workers),
    ADVSIEVE_DECODE_CONCURRENCY: String(decode),
  });
  try {
    return await measure(service.port, bodies, key, { services: [service], redis });
  } finally {
    await stopService(service);
  }
}

async function replicas(
  env: Record<string, string>,
  bodies: readonly Buffer[],
  key: string,
  redis?: number,
): Promise<Side> {
  const started: Service[] = [];
  try {
    const replicaEnv = {
      ...env,
      ADVSIEVE_WORKERS: String(REPLICA_WORKERS),
      ADVSIEVE_DECODE_CONCURRENCY: String(REPLICA_DECODE),
    };
    for (let i = 0; i < REPLICAS; i++) started.push(await startService(replicaEnv));
    const proxy = await startHaproxy(started.map((s) => s.port));
    try {
      return await measure(proxy.port, bodies, key, { services: started, haproxy: proxy.proc.pid, redis });
    } finally {
      await proxy.stop();
    }
  } finally {
    await Promise.all(started.map(stopService));
  }
}

const row = ({ figures: f, cpu, load }: Side) =>
  `${round(f.imagesPerSec)} images/s, p50 ${round(f.p50Ms, 0)} ms, p99 ${round(f.p99Ms, 0)} ms (${f.requests} requests, ${f.overloaded} overloaded, ${f.errors} errors); load ${load.toFixed(1)}` +
  (cpu
    ? `; CPU s per 1000 images: ${Object.entries(cpu)
        .map(([k, v]) => `${k} ${v.toFixed(2)}`)
        .join(', ')}, total ${Object.values(cpu)
        .reduce((a, b) => a + b, 0)
        .toFixed(2)}`
    : '');

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-bench-replicas-'));
  const own = process.env.REDIS_URL ? undefined : await startRedis();
  const keys = keyFile(dir);
  const env: Record<string, string> = {
    REDIS_URL: process.env.REDIS_URL ?? own!.url,
    ADVSIEVE_API_KEYS_FILE: keys.file,
    ADVSIEVE_JOB_CONSUMER: 'off',
  };
  const bodies = screenBodies(fixtureBytes(), PER_REQUEST);
  try {
    const loadBefore = os.loadavg()[0];
    const baseline = BASELINE ? await single(env, CORES, CORES, bodies, keys.key, own?.pid) : undefined;
    const direct = await single(env, SINGLE_WORKERS, SINGLE_DECODE, bodies, keys.key, own?.pid);
    const proxied = await replicas(env, bodies, keys.key, own?.pid);
    const ratio = proxied.figures.imagesPerSec / direct.figures.imagesPerSec;
    const ratioToBaseline = baseline ? proxied.figures.imagesPerSec / baseline.figures.imagesPerSec : undefined;
    const audit =
      process.env.ADVSIEVE_AUDIT === 'off'
        ? 'off'
        : process.env.DATABASE_URL
          ? 'postgres (shared)'
          : 'sqlite (one per replica)';
    const rows: Array<[string, string]> = [];
    if (baseline) rows.push([`1 replica, ${CORES} workers + ${CORES} decode (defaults), direct`, row(baseline)]);
    rows.push(
      [`1 replica, ${SINGLE_WORKERS} workers + ${SINGLE_DECODE} decode, direct`, row(direct)],
      [`${REPLICAS} replicas × (${REPLICA_WORKERS} workers + ${REPLICA_DECODE} decode), HAProxy`, row(proxied)],
      ['ratio (same workers and decode processes in total)', ratio.toFixed(3)],
    );
    if (ratioToBaseline !== undefined)
      rows.push(['ratio to the single replica with its defaults', ratioToBaseline.toFixed(3)]);
    printTable(
      `screen, ${PER_REQUEST} images per request, ${CONCURRENCY} clients, ${SECONDS} s after ${WARMUP_SECONDS} s warm-up; ${CORES} cores; audit ${audit}; load ${loadBefore.toFixed(1)} at the start`,
      rows,
    );
    process.stdout.write(
      JSON.stringify({
        seconds: SECONDS,
        warmupSeconds: WARMUP_SECONDS,
        concurrency: CONCURRENCY,
        perRequest: PER_REQUEST,
        cores: CORES,
        audit,
        replica: { workers: REPLICA_WORKERS, decode: REPLICA_DECODE },
        single: { workers: SINGLE_WORKERS, decode: SINGLE_DECODE },
        baseline,
        direct,
        proxied,
        ratio: Number(ratio.toFixed(3)),
        ratioToBaseline: ratioToBaseline === undefined ? undefined : Number(ratioToBaseline.toFixed(3)),
      }) + '\n',
    );
  } finally {
    await own?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
