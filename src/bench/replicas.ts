/**
 * `npm run bench:replicas`: images per second through HAProxy to three replicas sharing Redis (the
 * rate limits of an API key) against one replica spoken to directly, at the same client
 * concurrency, with the same `screen` requests. Every request carries an API key, so every request
 * pays its charges in Redis; the audit log is shared PostgreSQL when DATABASE_URL is set, else each
 * replica records into its own temporary SQLite file. Redis and HAProxy are started here (Debian's
 * redis-server and haproxy) unless REDIS_URL names a Redis. On a machine with fewer cores than
 * replicas × workers the replicas compete for the same cores: the ratio then shows the overhead of
 * the shared state and the proxy, not what more machines would add. Prints a table, then one JSON
 * object as the last line.
 *
 * Options (environment): BENCH_SECONDS (per measurement, default 5), BENCH_WARMUP_SECONDS (load
 * before each measurement, default 15), BENCH_CONCURRENCY (default
 * 16), BENCH_IMAGES_PER_REQUEST (default 8), ADVSIEVE_WORKERS (of each of the three replicas;
 * default: the cores divided among them, at least 1; the single replica has the service's default,
 * one per core).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PACKAGE_ROOT } from '../util/paths';
import { startHaproxy } from './haproxy';
import { closedLoop, fixtureBytes, LoadFigures, round, screenBodies, Service, startService, stopService } from './load';
import { printTable } from './measure';
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
/** Workers per replica: the machine's cores shared out, so that one replica and three use the same cores. */
const REPLICA_WORKERS =
  process.env.ADVSIEVE_WORKERS ?? String(Math.max(1, Math.floor(os.availableParallelism() / REPLICAS)));

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

async function measure(port: number, bodies: readonly Buffer[], key: string): Promise<LoadFigures> {
  return closedLoop(port, bodies, CONCURRENCY, {
    seconds: SECONDS,
    warmupSeconds: WARMUP_SECONDS,
    imagesPerRequest: PER_REQUEST,
    headers: { authorization: `Bearer ${key}` },
  });
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-bench-replicas-'));
  const own = process.env.REDIS_URL ? undefined : await startRedis();
  const keys = keyFile(dir);
  const env: Record<string, string> = {
    REDIS_URL: process.env.REDIS_URL ?? own!.url,
    ADVSIEVE_API_KEYS_FILE: keys.file,
  };
  const bodies = screenBodies(fixtureBytes(), PER_REQUEST);
  const started: Service[] = [];
  try {
    const single = await startService(env);
    started.push(single);
    const direct = await measure(single.port, bodies, keys.key);
    await stopService(single);
    started.length = 0;
    started.push(
      ...(await Promise.all(
        Array.from({ length: REPLICAS }, () => startService({ ...env, ADVSIEVE_WORKERS: REPLICA_WORKERS })),
      )),
    );
    const proxy = await startHaproxy(started.map((s) => s.port));
    let proxied: LoadFigures;
    try {
      proxied = await measure(proxy.port, bodies, keys.key);
    } finally {
      await proxy.stop();
    }
    const ratio = proxied.imagesPerSec / direct.imagesPerSec;
    const audit = process.env.DATABASE_URL ? 'postgres (shared)' : 'sqlite (one per replica)';
    const row = (f: LoadFigures) =>
      `${round(f.imagesPerSec)} images/s, p50 ${round(f.p50Ms, 0)} ms, p99 ${round(f.p99Ms, 0)} ms (${f.requests} requests, ${f.overloaded} overloaded, ${f.errors} errors)`;
    printTable(
      `screen, ${PER_REQUEST} images per request, ${CONCURRENCY} clients, ${SECONDS} s; ${os.availableParallelism()} cores; audit ${audit}`,
      [
        ['1 replica, direct', row(direct)],
        [`${REPLICAS} replicas (${REPLICA_WORKERS} workers each), HAProxy`, row(proxied)],
        ['ratio', ratio.toFixed(3)],
      ],
    );
    process.stdout.write(
      JSON.stringify({
        seconds: SECONDS,
        concurrency: CONCURRENCY,
        perRequest: PER_REQUEST,
        cores: os.availableParallelism(),
        audit,
        direct,
        proxied,
        ratio: Number(ratio.toFixed(3)),
      }) + '\n',
    );
  } finally {
    await Promise.all(started.map(stopService));
    await own?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
