/**
 * `npm run bench:soak`: the service at a moderate, steady load for a long time (10 minutes by
 * default), sampling every 10 s the process's RSS (workers included), the main thread's heap and
 * the tensors alive in the workers and on the main thread. Prints the series, then per series the
 * slope of a least-squares line (after a warm-up minute, while allocators and JIT settle) and
 * whether the growth it implies over the run stays within the noise: at most 3 residual standard
 * deviations, or 2 % of the mean, whichever is larger. A leak of one buffer per request shows as a
 * steady slope far beyond both. Last line: one JSON object.
 *
 * Options (environment): BENCH_SOAK_SECONDS (default 600), BENCH_SOAK_SAMPLE_SECONDS (10),
 * BENCH_SOAK_LOAD (fraction of the peak rate, measured first, default 0.3), ADVSIEVE_MODEL_DIR.
 */
import {
  closedLoop,
  fixtureBytes,
  flatness,
  metricsOf,
  openLoop,
  round,
  rssBytes,
  seriesSum,
  screenBodies,
  startService,
  stopService,
} from './load';
import { printTable } from './measure';

const SECONDS = Number(process.env.BENCH_SOAK_SECONDS ?? 600);
const SAMPLE_SECONDS = Number(process.env.BENCH_SOAK_SAMPLE_SECONDS ?? 10);
const LOAD = Number(process.env.BENCH_SOAK_LOAD ?? 0.3);
const WARMUP_SECONDS = Math.min(60, SECONDS / 5);

interface Sample {
  t: number;
  rssMB: number;
  heapMB: number;
  workerTensors: number;
  mainTensors: number;
  answered: number;
}

const SERIES = ['rssMB', 'heapMB', 'workerTensors', 'mainTensors'] as const;

async function main(): Promise<void> {
  const bodies = screenBodies(fixtureBytes(), 1);
  const service = await startService({});
  const samples: Sample[] = [];
  let peak: number;
  let load: Awaited<ReturnType<typeof openLoop>>;
  try {
    peak = (await closedLoop(service.port, bodies, 64, { seconds: 5, warmupSeconds: 1, imagesPerRequest: 1 }))
      .imagesPerSec;
    const rate = peak * LOAD;
    process.stderr.write(`soak: peak ${peak.toFixed(0)} img/s; ${rate.toFixed(0)} requests/s for ${SECONDS} s\n`);
    const start = performance.now();
    const sample = async () => {
      const m = await metricsOf(service.port);
      const s: Sample = {
        t: round((performance.now() - start) / 1000, 0),
        rssMB: round(rssBytes(service.proc.pid!) / 2 ** 20),
        heapMB: round((m.get('advsieve_nodejs_heap_size_used_bytes') ?? NaN) / 2 ** 20),
        workerTensors: seriesSum(m, 'advsieve_worker_tensors'),
        mainTensors: m.get('advsieve_main_thread_tensors') ?? NaN,
        answered: seriesSum(m, 'advsieve_images_total', { operation: 'screen', outcome: 'ok' }),
      };
      samples.push(s);
      process.stderr.write(`soak: ${JSON.stringify(s)}\n`);
    };
    await sample();
    let nextSample = start + SAMPLE_SECONDS * 1000;
    let sampling = Promise.resolve();
    let lost: string | undefined;
    load = await openLoop(service.port, bodies, rate, {
      seconds: SECONDS,
      imagesPerRequest: 1,
      onSecond: () => {
        if (performance.now() < nextSample) return;
        nextSample += SAMPLE_SECONDS * 1000;
        // A failed sample (the service gone) is kept and said after the run, not left unhandled.
        sampling = sampling.then(sample).catch((err: Error) => {
          lost ??= `t = ${round((performance.now() - start) / 1000, 0)} s: ${err.message}`;
        });
      },
    });
    await sampling;
    if (lost)
      throw new Error(
        `the service stopped answering /metrics at ${lost} (exit: ${service.proc.exitCode ?? service.proc.signalCode})`,
      );
    await sample();
  } finally {
    await stopService(service);
  }

  const steady = samples.filter((s) => s.t >= WARMUP_SECONDS);
  const verdicts = Object.fromEntries(
    SERIES.map((name) => {
      const ys = steady.map((s) => s[name]);
      if (ys.some((y) => !Number.isFinite(y))) return [name, { available: false }];
      const f = flatness(
        steady.map((s) => s.t),
        ys,
      );
      return [
        name,
        {
          mean: round(f.mean, 2),
          slopePerMinute: round(f.slope * 60, 3),
          growthOverRun: round(f.growth, 2),
          noise: round(f.noise, 2),
          flat: f.flat,
        },
      ];
    }),
  );
  const rows: [string, string][] = samples.map((s) => [
    `t = ${String(s.t).padStart(4)} s`,
    `RSS ${s.rssMB.toFixed(1)} MB, heap ${s.heapMB.toFixed(1)} MB, tensors ${s.workerTensors} (workers) ${s.mainTensors} (main), ${s.answered} screened`,
  ]);
  for (const [name, v] of Object.entries(verdicts)) {
    const f = v as {
      available?: boolean;
      slopePerMinute?: number;
      growthOverRun?: number;
      noise?: number;
      flat?: boolean;
    };
    rows.push([
      `${name} after ${WARMUP_SECONDS} s`,
      f.available === false
        ? 'not reported by the service'
        : `slope ${f.slopePerMinute}/min, growth ${f.growthOverRun} vs noise ${f.noise}: ${f.flat ? 'flat' : 'GROWING'}`,
    ]);
  }
  rows.push([
    'load',
    `${load.sent} requests sent, ${load.requests} answered with a result, ${load.overloaded} overloaded, ${load.errors} failed`,
  ]);
  printTable(`bench:soak (${SECONDS} s at ${(LOAD * 100).toFixed(0)} % of the peak ${peak.toFixed(0)} img/s)`, rows);
  const summary = {
    seconds: SECONDS,
    sampleSeconds: SAMPLE_SECONDS,
    peakImagesPerSec: Math.round(peak),
    loadRequestsPerSec: round(peak * LOAD),
    sent: load.sent,
    answered: load.requests,
    overloaded: load.overloaded,
    errors: load.errors,
    errorSamples: load.errorSamples,
    p99Ms: round(load.p99Ms),
    series: Object.fromEntries(SERIES.map((name) => [name, samples.map((s) => s[name])])),
    t: samples.map((s) => s.t),
    verdicts,
    flat: Object.values(verdicts).every((v) => (v as { flat?: boolean; available?: boolean }).flat !== false),
  };
  process.stdout.write(JSON.stringify(summary) + '\n');
}

main().catch((err: Error) => {
  process.stderr.write(`bench:soak: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
