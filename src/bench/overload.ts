/**
 * `npm run bench:overload`: the service offered twice the rate it can serve, for 60 s. First the
 * peak is measured (closed loop, concurrency 64, 1 image per request); then requests arrive in an
 * open loop at twice that rate, as independent clients would send them, whatever the answers.
 * Sampled every second: the process's RSS (workers included). Goals: RSS bounded (its line over the
 * second half is flat within the noise, and no sample above the bound printed), every request
 * answered with a result or OVERLOADED (no failure, no lost connection), the service alive at the
 * end, and results per second ≥ 90 % of the peak. Last line: one JSON object.
 *
 * Options (environment): BENCH_OVERLOAD_SECONDS (default 60), BENCH_OVERLOAD_FACTOR (default 2),
 * BENCH_PEAK_SECONDS (default 10), and the service's own ADVSIEVE_* settings.
 */
import {
  closedLoop,
  fixtureBytes,
  get,
  flatness,
  openLoop,
  round,
  rssBytes,
  screenBodies,
  startService,
  stopService,
} from './load';
import { printTable } from './measure';

const SECONDS = Number(process.env.BENCH_OVERLOAD_SECONDS ?? 60);
const FACTOR = Number(process.env.BENCH_OVERLOAD_FACTOR ?? 2);
const PEAK_SECONDS = Number(process.env.BENCH_PEAK_SECONDS ?? 10);

async function main(): Promise<void> {
  const bodies = screenBodies(fixtureBytes(), 1);
  const service = await startService({});
  const rss: Array<{ t: number; mb: number }> = [];
  let alive = false;
  let peak: Awaited<ReturnType<typeof closedLoop>>;
  let rssAtPeakMB: number;
  let over: Awaited<ReturnType<typeof openLoop>>;
  try {
    peak = await closedLoop(service.port, bodies, 64, { seconds: PEAK_SECONDS, warmupSeconds: 2, imagesPerRequest: 1 });
    rssAtPeakMB = rssBytes(service.proc.pid!) / 2 ** 20;
    const rate = peak.imagesPerSec * FACTOR;
    process.stderr.write(
      `overload: peak ${peak.imagesPerSec.toFixed(0)} img/s (RSS ${rssAtPeakMB.toFixed(0)} MB); ${rate.toFixed(0)} requests/s for ${SECONDS} s\n`,
    );
    const start = performance.now();
    over = await openLoop(service.port, bodies, rate, {
      seconds: SECONDS,
      imagesPerRequest: 1,
      // Twice the service's admission limit (256 by default): requests pile up in the service, which
      // must refuse them, not in this client. With thousands of sockets the client would instead
      // open new connections faster than the kernel's accept queue takes them, and the kernel's
      // SYN drops (retried after 1, 3, 7… s) and resets would be measured, not the service.
      maxSockets: 512,
      onSecond: () => {
        const mb = rssBytes(service.proc.pid!) / 2 ** 20;
        rss.push({ t: round((performance.now() - start) / 1000), mb: round(mb) });
      },
    });
    // Still alive and answering after the storm.
    alive = (await get(service.port, '/health/ready').catch(() => ({ status: 0 }))).status === 200;
  } finally {
    await stopService(service);
  }

  const second = rss.filter((s) => s.t >= SECONDS / 2);
  const maxMB = Math.max(...rss.map((s) => s.mb));
  const {
    slope,
    growth,
    noise,
    flat: rssFlat,
  } = flatness(
    second.map((s) => s.t),
    second.map((s) => s.mb),
  );
  // Results per second from the first request to the last answer, so that answers queued past the
  // window count against the service, not for it.
  const resultsPerSec = over.requests / over.drainedSeconds;
  const ratio = resultsPerSec / peak.imagesPerSec;
  const goals = {
    rssBounded: rssFlat,
    everyRequestAnswered: over.errors === 0,
    alive,
    throughputAtLeast90PercentOfPeak: ratio >= 0.9,
  };
  const rows: [string, string][] = [
    [
      'peak (closed loop, 64)',
      `${peak.imagesPerSec.toFixed(0)} img/s, p99 ${peak.p99Ms.toFixed(0)} ms, RSS ${rssAtPeakMB.toFixed(0)} MB`,
    ],
    [
      `offered (open loop, × ${FACTOR})`,
      `${(peak.imagesPerSec * FACTOR).toFixed(0)} requests/s for ${SECONDS} s: ${over.sent} sent`,
    ],
    [
      'answered',
      `${over.requests} results (${resultsPerSec.toFixed(0)} img/s over ${over.drainedSeconds.toFixed(1)} s, p50 ${over.p50Ms.toFixed(0)} ms, p99 ${over.p99Ms.toFixed(0)} ms), ` +
        `${over.overloaded} OVERLOADED, ${over.errors} failed`,
    ],
    ['results ÷ peak (goal ≥ 0.9)', ratio.toFixed(2)],
    [
      'RSS',
      `max ${maxMB.toFixed(0)} MB; second half: slope ${(slope * 60).toFixed(1)} MB/min, growth ${growth.toFixed(1)} MB vs noise ${noise.toFixed(1)} MB: ${rssFlat ? 'flat' : 'GROWING'}`,
    ],
    ['alive afterwards', alive ? 'yes (/health/ready 200)' : 'NO'],
  ];
  if (over.errorSamples.length) rows.push(['first failures', over.errorSamples.join(' | ')]);
  printTable(`bench:overload (× ${FACTOR} the peak for ${SECONDS} s)`, rows);
  const summary = {
    seconds: SECONDS,
    factor: FACTOR,
    peakImagesPerSec: Math.round(peak.imagesPerSec),
    offeredRequestsPerSec: Math.round(peak.imagesPerSec * FACTOR),
    sent: over.sent,
    results: over.requests,
    overloaded: over.overloaded,
    errors: over.errors,
    resultsPerSec: Math.round(resultsPerSec),
    drainedSeconds: round(over.drainedSeconds),
    resultsOverPeak: round(ratio, 2),
    p50Ms: round(over.p50Ms),
    p99Ms: round(over.p99Ms),
    rssAtPeakMB: round(rssAtPeakMB),
    rssMaxMB: round(maxMB),
    rssSlopeMBPerMinSecondHalf: round(slope * 60, 2),
    rss: rss.map((s) => s.mb),
    goals,
    met: Object.values(goals).every(Boolean),
  };
  process.stdout.write(JSON.stringify(summary) + '\n');
}

main().catch((err: Error) => {
  process.stderr.write(`bench:overload: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
