/**
 * `npm run bench:audit`: what recording a verdict costs, per backend — SQLite with
 * ADVSIEVE_AUDIT_SYNC=full (WAL synced through the thread pool), with SQLite's own
 * synchronous=FULL on the main thread (for comparison), and with `normal` (temporary files in
 * TMPDIR: put it on the disk the log would use), and PostgreSQL when DATABASE_URL is set (use a
 * scratch database: the bench writes its rows there). Two loads, one image per request:
 * - sequential: one request at a time, so each record is its own commit (the latency a lone client
 *   sees added to its request);
 * - concurrent: BENCH_CONCURRENCY callers (default 64) recording back to back for BENCH_SECONDS
 *   (default 3), as a loaded service does; group commit merges them. Reported: images per second,
 *   mean latency, and the main thread's busy time per image (event-loop utilisation × time ÷
 *   images) — better-sqlite3 commits, fsync included, on the main thread.
 * Then the service itself (`advsieve serve`, a child process) under the `screen` mutation at
 * concurrency 8 and 64 (BENCH_API_SECONDS each, default 3; 0 skips it), with the audit log off and
 * with each backend: the cost as a client sees it, HTTP, decoding and inference included.
 * Last line: one JSON object.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import type { AuditLog, AuditRecord } from '../audit/auditLog';
import { PostgresAuditLog } from '../audit/postgres';
import { SqliteAuditLog } from '../audit/sqlite';
import { closedLoop, fixtureBytes, LoadFigures, screenBodies, startService, stopService } from './load';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const SEQUENTIAL = 300;
const API_SECONDS = Number(process.env.BENCH_API_SECONDS ?? 3);

/** A realistic row: the bundled model's five detectors, hashes, a request id. */
function verdict(i: number): AuditRecord {
  const names = ['highFrequency', 'activationDistance', 'mahalanobis', 'density', 'lowPassDisagreement'];
  return {
    time: new Date(),
    requestId: `bench-${i}`,
    clientRequestId: null,
    keyId: null,
    operation: 'screen',
    imageIndex: 0,
    sha256: (i.toString(16) + 'f'.repeat(64)).slice(0, 64),
    byteSize: 350,
    classIndex: i % 10,
    label: 'Trouser',
    confidence: 0.98765,
    adversarial: i % 17 === 0,
    score: -1.2345678,
    threshold: 1.5432,
    targetFpr: 0.05,
    detectors: names.map((name, k) => ({ name, score: k * 0.731 - 1, threshold: 2.1 + k, flagged: false })),
    defenseClassIndex: null,
    defenseLabel: null,
    defenseConfidence: null,
    errorCode: null,
    modelId: 'fashion-cnn',
    modelSha256: 'a'.repeat(64),
    calibrationSha256: 'b'.repeat(64),
    calibrationCreatedAt: '2026-11-01T00:00:00.000Z',
    image: null,
    jobId: null,
  };
}

interface Figures {
  sequentialMsPerImage: number;
  sequentialMainThreadUsPerImage: number;
  concurrentImagesPerSec: number;
  concurrentLatencyMs: number;
  mainThreadUsPerImage: number;
}

async function measure(log: AuditLog): Promise<Figures> {
  let n = 0;
  for (let i = 0; i < 20; i++) await log.record([verdict(n++)]); // warm-up
  let t0 = performance.now();
  const seqElu0 = performance.eventLoopUtilization();
  for (let i = 0; i < SEQUENTIAL; i++) await log.record([verdict(n++)]);
  const seqElapsed = performance.now() - t0;
  const sequentialMsPerImage = seqElapsed / SEQUENTIAL;
  const seqElu = performance.eventLoopUtilization(seqElu0);

  let images = 0;
  let latency = 0;
  const end = performance.now() + SECONDS * 1000;
  const elu0 = performance.eventLoopUtilization();
  t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const start = performance.now();
        await log.record([verdict(n++)]);
        latency += performance.now() - start;
        images++;
      }
    }),
  );
  const elapsed = performance.now() - t0;
  const elu = performance.eventLoopUtilization(elu0);
  return {
    sequentialMsPerImage: round(sequentialMsPerImage, 3),
    sequentialMainThreadUsPerImage: round((seqElu.utilization * seqElapsed * 1000) / SEQUENTIAL, 1),
    concurrentImagesPerSec: Math.round((images / elapsed) * 1000),
    concurrentLatencyMs: round(latency / images, 2),
    mainThreadUsPerImage: round((elu.utilization * elapsed * 1000) / images, 1),
  };
}

/** The service's throughput and latency with the audit log off and on each backend, same load. */
async function throughTheService(dir: string): Promise<Record<string, Record<number, LoadFigures>>> {
  const bodies = screenBodies(fixtureBytes(), 1);
  const configs: Record<string, Record<string, string>> = {
    off: { ADVSIEVE_AUDIT: 'off' },
    'sqlite-full': { ADVSIEVE_AUDIT_DB: path.join(dir, 'api-full.sqlite'), ADVSIEVE_AUDIT_SYNC: 'full' },
    'sqlite-normal': { ADVSIEVE_AUDIT_DB: path.join(dir, 'api-normal.sqlite'), ADVSIEVE_AUDIT_SYNC: 'normal' },
  };
  if (process.env.DATABASE_URL) configs.postgres = { DATABASE_URL: process.env.DATABASE_URL };
  const out: Record<string, Record<number, LoadFigures>> = {};
  for (const [name, env] of Object.entries(configs)) {
    // DATABASE_URL from this process's environment would select PostgreSQL for every run.
    const service = await startService({ DATABASE_URL: '', ...env });
    out[name] = {};
    try {
      for (const c of [8, 64]) {
        const f = await closedLoop(service.port, bodies, c, {
          seconds: API_SECONDS,
          warmupSeconds: 1,
          imagesPerRequest: 1,
        });
        out[name][c] = {
          ...f,
          imagesPerSec: Math.round(f.imagesPerSec),
          p50Ms: round(f.p50Ms, 1),
          p99Ms: round(f.p99Ms, 1),
        };
      }
    } finally {
      await stopService(service);
    }
  }
  return out;
}

function round(x: number, digits: number): number {
  return Number(x.toFixed(digits));
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-bench-audit-'));
  const results: Record<string, Figures> = {};
  let service: Record<string, Record<number, LoadFigures>> = {};
  try {
    const variants = {
      'sqlite-full': { sync: 'full', fsync: 'thread-pool' },
      'sqlite-full-on-main-thread': { sync: 'full', fsync: 'sqlite' },
      'sqlite-normal': { sync: 'normal' },
    } as const;
    for (const [name, options] of Object.entries(variants)) {
      const log = SqliteAuditLog.open({ file: path.join(dir, `${name}.sqlite`), ...options });
      results[name] = await measure(log);
      await log.close();
    }
    if (process.env.DATABASE_URL) {
      const log = await PostgresAuditLog.open({ url: process.env.DATABASE_URL, poolSize: 4 });
      results.postgres = await measure(log);
      await log.close();
    }
    if (API_SECONDS > 0) service = await throughTheService(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  for (const [name, f] of Object.entries(results)) {
    process.stdout.write(
      `${name.padEnd(27)} sequential ${f.sequentialMsPerImage} ms/image (main thread ${f.sequentialMainThreadUsPerImage} µs); ${CONCURRENCY} concurrent: ` +
        `${f.concurrentImagesPerSec} images/s, ${f.concurrentLatencyMs} ms mean latency, ` +
        `${f.mainThreadUsPerImage} µs of main thread per image\n`,
    );
  }
  for (const [name, byConcurrency] of Object.entries(service)) {
    const cells = Object.entries(byConcurrency).map(
      ([c, f]) => `c=${c}: ${f.imagesPerSec} images/s, p50 ${f.p50Ms} ms, p99 ${f.p99Ms} ms, ${f.errors} errors`,
    );
    process.stdout.write(`service, audit ${name.padEnd(14)} ${cells.join('; ')}\n`);
  }
  process.stdout.write(
    JSON.stringify({ seconds: SECONDS, concurrency: CONCURRENCY, tmpdir: os.tmpdir(), ...results, service }) + '\n',
  );
}

main().catch((err: Error) => {
  process.stderr.write(`bench:audit: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
