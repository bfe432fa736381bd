/**
 * `npm run bench:api`: the GraphQL service under load over loopback, against the engine alone, in
 * one run so that the ratios compare:
 *   1. engine-only screening: the engine started in this process, C callers each submitting
 *      BENCH_IMAGES_PER_REQUEST decoded images and screening the outputs, no HTTP, no decoding;
 *      then the same with batches of one: the most batching can gain on this backend, whatever the
 *      service in front of it does;
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
import * as http from 'http';
import { calibrationPath, loadCalibration } from '../calibration/calibrationFile';
import { Engine } from '../engine/engine';
import { hashModelFiles, readMetadata } from '../engine/modelStore';
import { decodeImage } from '../images/decode';
import { Screener } from '../screening/screener';
import { defaultModelDir } from '../util/paths';
import {
  closedLoop as closedLoopOf,
  fixtureBytes,
  histogram,
  LoadFigures,
  openLoop as openLoopOf,
  round,
  screenBodies,
  startService,
  stopService,
} from './load';
import { printTable } from './measure';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const PER_REQUEST = Number(process.env.BENCH_IMAGES_PER_REQUEST ?? 1);
const WARMUP_SECONDS = 1;
const CONCURRENCY = [1, 8, 64] as const;

const closedLoop = (port: number, bodies: readonly Buffer[], concurrency: number) =>
  closedLoopOf(port, bodies, concurrency, {
    seconds: SECONDS,
    warmupSeconds: WARMUP_SECONDS,
    imagesPerRequest: PER_REQUEST,
  });
const openLoop = (port: number, bodies: readonly Buffer[], requestsPerSec: number) =>
  openLoopOf(port, bodies, requestsPerSec, { seconds: SECONDS, imagesPerRequest: PER_REQUEST });

// ---- engine only ----

async function engineOnly(files: readonly Buffer[], callers: number, maxBatch?: number): Promise<number> {
  const modelDir = defaultModelDir();
  const metadata = readMetadata(modelDir);
  const screener = new Screener(loadCalibration(calibrationPath(modelDir), hashModelFiles(modelDir)), metadata.labels);
  const pixels = await Promise.all(files.map(async (f) => (await decodeImage(f, metadata.inputShape)).pixels));
  const engine = await Engine.start({ modelDir, maxBatch, extras: { ...screener.extras, lowPassPixels: true } });
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
  (f.errors ? `, ${f.errors} errors` : '') +
  (f.overloaded ? `, ${f.overloaded} overloaded` : '');

async function main(): Promise<void> {
  const files = fixtureBytes();
  const requestBodies = screenBodies(files, PER_REQUEST);
  const rows: [string, string][] = [];

  const engine = await engineOnly(files, 64);
  rows.push([`engine only, 64 callers × ${PER_REQUEST} image(s), screened`, `${engine.toFixed(0)} img/s`]);
  // The ceiling of batching's gain on this backend: no service in front, batches of one.
  const engineUnbatched = await engineOnly(files, 64, 1);
  rows.push(['engine only, batching off (maxBatch 1)', `${engineUnbatched.toFixed(0)} img/s`]);

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
    engineOnlyBatchingOff: Math.round(engineUnbatched),
    engineBatchingSpeedup: round(engine / engineUnbatched, 2),
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
    errors:
      Object.values(service).reduce((a, f) => a + f.errors + f.overloaded, 0) +
      batchingOff.errors +
      batchingOff.overloaded +
      halfLoad.errors +
      halfLoad.overloaded,
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
