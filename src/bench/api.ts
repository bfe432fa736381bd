/**
 * `npm run bench:api`: the GraphQL service under load over loopback, against the engine alone, in
 * one run so that the ratios compare:
 *   1. engine-only screening: the engine started in this process, C callers each submitting
 *      BENCH_IMAGES_PER_REQUEST decoded images and screening the outputs, no HTTP, no decoding;
 *   2. the service (`advsieve serve`, a child process) driven by a bounded closed-loop client at
 *      concurrency 1, 8 and 64 with the `screen` mutation (base64 images in JSON bodies);
 *   3. the service with batching off (ADVSIEVE_MAX_BATCH=1) at concurrency 64;
 *   4. p99 latency at half the peak load (open loop, requests at a fixed rate), against
 *      maxDelayMs + 2 batch compute times, the compute time read from the service's /metrics.
 * Prints a table, then one JSON object as the last line. The client shares the machine's cores with
 * the service: on a 2-core machine it takes a share the service would otherwise have.
 *
 * Options (environment): BENCH_SECONDS (per measurement, default 5), BENCH_IMAGES_PER_REQUEST
 * (default 1), ADVSIEVE_MODEL_DIR.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { calibrationPath, loadCalibration } from '../calibration/calibrationFile';
import { Engine } from '../engine/engine';
import { hashModelFiles, readMetadata } from '../engine/modelStore';
import { decodeImage } from '../images/decode';
import { Screener } from '../screening/screener';
import { defaultModelDir, PACKAGE_ROOT } from '../util/paths';
import { printTable } from './measure';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const PER_REQUEST = Number(process.env.BENCH_IMAGES_PER_REQUEST ?? 1);
const WARMUP_SECONDS = 1;
const CONCURRENCY = [1, 8, 64] as const;
const FIXTURES = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'fashion');
const QUERY =
  'mutation($images: [ImageInput!]!) { screen(images: $images) { index prediction { classIndex confidence } ' +
  'detection { adversarial score threshold } error { code } } }';

interface LoadFigures {
  imagesPerSec: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  errors: number;
}

function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** Throughput and latency percentiles of the requests answered in `elapsed` seconds. */
function figures(latencies: number[], errors: number, elapsed: number): LoadFigures {
  latencies.sort((a, b) => a - b);
  return {
    imagesPerSec: (latencies.length * PER_REQUEST) / elapsed,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    requests: latencies.length,
    errors,
  };
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function fixtureBytes(): Buffer[] {
  return fs
    .readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.png'))
    .sort()
    .map((f) => fs.readFileSync(path.join(FIXTURES, f)));
}

/** Request bodies, each with PER_REQUEST distinct images, rotating through the fixtures. */
function bodies(files: readonly Buffer[]): Buffer[] {
  return files.map((_, start) =>
    Buffer.from(
      JSON.stringify({
        query: QUERY,
        variables: {
          images: Array.from({ length: PER_REQUEST }, (_, j) => ({
            base64: files[(start + j) % files.length].toString('base64'),
          })),
        },
      }),
    ),
  );
}

// ---- engine only ----

async function engineOnly(files: readonly Buffer[], callers: number): Promise<number> {
  const modelDir = defaultModelDir();
  const metadata = readMetadata(modelDir);
  const screener = new Screener(loadCalibration(calibrationPath(modelDir), hashModelFiles(modelDir)), metadata.labels);
  const pixels = await Promise.all(files.map(async (f) => (await decodeImage(f, metadata.inputShape)).pixels));
  const engine = await Engine.start({ modelDir, extras: { ...screener.extras, lowPassPixels: true } });
  try {
    let images = 0;
    let measuring = false;
    let stop = false;
    const caller = async (c: number) => {
      for (let i = c; !stop; i += callers) {
        // Fresh copies: the engine transfers each batch's buffer to a worker.
        const batch = Array.from({ length: PER_REQUEST }, (_, j) => pixels[(i + j) % pixels.length].slice());
        const outs = await Promise.all(engine.infer(batch));
        for (const o of outs) screener.screen(o);
        if (measuring) images += outs.length;
      }
    };
    const running = Array.from({ length: callers }, (_, c) => caller(c));
    await new Promise((r) => setTimeout(r, WARMUP_SECONDS * 1000));
    measuring = true;
    const start = performance.now();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const rate = images / ((performance.now() - start) / 1000);
    stop = true;
    await Promise.all(running);
    return rate;
  } finally {
    await engine.close();
  }
}

// ---- the service ----

interface Service {
  readonly port: number;
  readonly proc: ChildProcess;
}

async function startService(env: Record<string, string>): Promise<Service> {
  const proc = spawn(process.execPath, [path.join(PACKAGE_ROOT, 'bin', 'advsieve.js'), 'serve'], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = '';
    proc.stderr!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        const entry = JSON.parse(line) as { port?: number; url?: string; level?: number; msg?: string };
        if (entry.port && entry.url) resolve(entry.port);
        else if ((entry.level ?? 0) >= 50) process.stderr.write(`service: ${entry.msg}\n`);
      }
    });
    proc.once('exit', (code) => reject(new Error(`service exited (${code}) before listening`)));
  });
  for (let i = 0; ; i++) {
    const status = await get(port, '/health/ready').then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) break;
    if (i > 1200) throw new Error('service not ready after 60 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, proc };
}

async function stopService(s: Service): Promise<void> {
  const exited = new Promise((r) => s.proc.once('exit', r));
  s.proc.kill('SIGTERM');
  await exited;
}

function get(port: number, p: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      })
      .on('error', reject);
  });
}

function post(agent: http.Agent, port: number, body: Buffer): Promise<{ ok: boolean; ms: number }> {
  const start = performance.now();
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/graphql',
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () =>
          resolve({ ok: res.statusCode === 200 && !text.includes('"errors"'), ms: performance.now() - start }),
        );
      },
    );
    req.on('error', () => resolve({ ok: false, ms: performance.now() - start }));
    req.end(body);
  });
}

/** Closed loop: `concurrency` clients, each sending its next request when the last is answered. */
async function closedLoop(port: number, requestBodies: readonly Buffer[], concurrency: number): Promise<LoadFigures> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let errors = 0;
  let measuring = false;
  let stop = false;
  const client = async (c: number) => {
    for (let i = c; !stop; i += concurrency) {
      const r = await post(agent, port, requestBodies[i % requestBodies.length]);
      if (!measuring) continue;
      if (r.ok) latencies.push(r.ms);
      else errors++;
    }
  };
  const running = Array.from({ length: concurrency }, (_, c) => client(c));
  await new Promise((r) => setTimeout(r, WARMUP_SECONDS * 1000));
  measuring = true;
  const start = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  measuring = false;
  const elapsed = (performance.now() - start) / 1000;
  stop = true;
  await Promise.all(running);
  agent.destroy();
  return figures(latencies, errors, elapsed);
}

/** Open loop: requests sent at a fixed rate whatever the answers, for latency under a given load. */
async function openLoop(port: number, requestBodies: readonly Buffer[], requestsPerSec: number): Promise<LoadFigures> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  let errors = 0;
  const start = performance.now();
  for (let i = 0; performance.now() - start < SECONDS * 1000; i++) {
    const due = start + (i * 1000) / requestsPerSec;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    pending.push(
      post(agent, port, requestBodies[i % requestBodies.length]).then((r) => {
        if (r.ok) latencies.push(r.ms);
        else errors++;
      }),
    );
  }
  const elapsed = (performance.now() - start) / 1000;
  await Promise.all(pending);
  agent.destroy();
  return figures(latencies, errors, elapsed);
}

/** Sum and count of a histogram in the service's /metrics text. */
async function histogram(port: number, name: string): Promise<{ sum: number; count: number }> {
  const { text } = await get(port, '/metrics');
  const value = (suffix: string) => Number(text.match(new RegExp(`^${name}_${suffix} (\\S+)$`, 'm'))?.[1] ?? 0);
  return { sum: value('sum'), count: value('count') };
}

async function batchingSettings(
  port: number,
): Promise<{ maxDelayMs: number; maxBatch: number; workers: number; backend: string }> {
  const body = Buffer.from(JSON.stringify({ query: '{ model { backend batching { maxBatch maxDelayMs workers } } }' }));
  const text = await new Promise<string>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: '/graphql', method: 'POST', headers: { 'content-type': 'application/json' } },
      (res) => {
        let t = '';
        res.on('data', (d: Buffer) => (t += d.toString('utf8')));
        res.on('end', () => resolve(t));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
  const model = (
    JSON.parse(text) as {
      data: { model: { backend: string; batching: { maxBatch: number; maxDelayMs: number; workers: number } } };
    }
  ).data.model;
  return { ...model.batching, backend: model.backend };
}

const fmt = (f: LoadFigures) =>
  `${f.imagesPerSec.toFixed(0)} img/s, p50 ${f.p50Ms.toFixed(1)} ms, p99 ${f.p99Ms.toFixed(1)} ms` +
  (f.errors ? `, ${f.errors} errors` : '');

async function main(): Promise<void> {
  const files = fixtureBytes();
  const requestBodies = bodies(files);
  const rows: [string, string][] = [];

  const engine = await engineOnly(files, 64);
  rows.push([`engine only, 64 callers × ${PER_REQUEST} image(s), screened`, `${engine.toFixed(0)} img/s`]);

  const service: Record<string, LoadFigures> = {};
  let settings: Awaited<ReturnType<typeof batchingSettings>>;
  let halfLoad: LoadFigures;
  let computeMs: number;
  const on = await startService({});
  try {
    settings = await batchingSettings(on.port);
    for (const c of CONCURRENCY) {
      service[c] = await closedLoop(on.port, requestBodies, c);
      rows.push([`service, concurrency ${c}`, fmt(service[c])]);
    }
    const before = await histogram(on.port, 'advsieve_engine_batch_compute_seconds');
    halfLoad = await openLoop(on.port, requestBodies, service[64].imagesPerSec / 2 / PER_REQUEST);
    const after = await histogram(on.port, 'advsieve_engine_batch_compute_seconds');
    computeMs = ((after.sum - before.sum) / Math.max(1, after.count - before.count)) * 1000;
    rows.push([
      `service, open loop at half the peak (${(service[64].imagesPerSec / 2).toFixed(0)} img/s)`,
      fmt(halfLoad),
    ]);
  } finally {
    await stopService(on);
  }

  const off = await startService({ ADVSIEVE_MAX_BATCH: '1' });
  let batchingOff: LoadFigures;
  try {
    batchingOff = await closedLoop(off.port, requestBodies, 64);
    rows.push(['service, batching off (maxBatch 1), concurrency 64', fmt(batchingOff)]);
  } finally {
    await stopService(off);
  }

  const bound = settings.maxDelayMs + 2 * computeMs;
  const summary = {
    backend: settings.backend,
    workers: settings.workers,
    maxBatch: settings.maxBatch,
    maxDelayMs: settings.maxDelayMs,
    imagesPerRequest: PER_REQUEST,
    seconds: SECONDS,
    engineOnly: Math.round(engine),
    service: Object.fromEntries(
      CONCURRENCY.map((c) => [
        c,
        {
          imagesPerSec: Math.round(service[c].imagesPerSec),
          p50Ms: round(service[c].p50Ms),
          p99Ms: round(service[c].p99Ms),
        },
      ]),
    ),
    batchingOff64: Math.round(batchingOff.imagesPerSec),
    serviceOverEngine64: round(service[64].imagesPerSec / engine, 2),
    batchingSpeedup64: round(service[64].imagesPerSec / batchingOff.imagesPerSec, 2),
    halfLoad: {
      imagesPerSec: Math.round(halfLoad.imagesPerSec),
      p99Ms: round(halfLoad.p99Ms),
      batchComputeMs: round(computeMs, 2),
      boundMs: round(bound),
    },
    errors: Object.values(service).reduce((a, f) => a + f.errors, 0) + batchingOff.errors + halfLoad.errors,
  };
  rows.push(['service ÷ engine only at 64 (goal ≥ 0.8)', summary.serviceOverEngine64.toFixed(2)]);
  rows.push(['batching on ÷ off at 64 (goal ≥ 5)', summary.batchingSpeedup64.toFixed(2)]);
  rows.push([
    'p99 at half the peak vs maxDelayMs + 2 batch compute times',
    `${halfLoad.p99Ms.toFixed(1)} ms vs ${bound.toFixed(1)} ms (${settings.maxDelayMs} + 2 × ${computeMs.toFixed(2)})`,
  ]);
  printTable(`bench:api (${settings.backend}, ${settings.workers} workers, ${SECONDS} s per figure)`, rows);
  process.stdout.write(JSON.stringify(summary) + '\n');
}

main().catch((err: Error) => {
  process.stderr.write(`bench:api: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
