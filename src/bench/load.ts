/**
 * What the service benchmarks share: starting `advsieve serve` as a child process, a loopback HTTP
 * client that sorts answers into results, OVERLOADED refusals and failures, closed-loop and
 * open-loop load, and readings of the service's /metrics and of its process's memory.
 */
import { ChildProcess, fork, spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { listeningPort, temporaryAuditLog } from '../util/childService';
import { PACKAGE_ROOT } from '../util/paths';

export const FIXTURES = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'fashion');
export const SCREEN_QUERY =
  'mutation($images: [ImageInput!]!) { screen(images: $images) { index prediction { classIndex confidence } ' +
  'detection { adversarial score threshold } error { code } } }';

/** How one request ended, from the client's side. */
export type Outcome = 'ok' | 'overloaded' | 'error';

export interface LoadFigures {
  /** Images per second in requests answered with a result. */
  imagesPerSec: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  overloaded: number;
  errors: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Throughput and latency percentiles of the requests answered with a result in `elapsed` seconds. */
export function figures(
  latencies: number[],
  counts: { overloaded: number; errors: number },
  elapsed: number,
  imagesPerRequest: number,
): LoadFigures {
  latencies.sort((a, b) => a - b);
  return {
    imagesPerSec: (latencies.length * imagesPerRequest) / elapsed,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    requests: latencies.length,
    overloaded: counts.overloaded,
    errors: counts.errors,
  };
}

export function fixtureBytes(): Buffer[] {
  return fs
    .readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.png'))
    .sort()
    .map((f) => fs.readFileSync(path.join(FIXTURES, f)));
}

/** `screen` request bodies, each with `perRequest` distinct images, rotating through the files. */
export function screenBodies(files: readonly Buffer[], perRequest: number): Buffer[] {
  return files.map((_, start) =>
    Buffer.from(
      JSON.stringify({
        query: SCREEN_QUERY,
        variables: {
          images: Array.from({ length: perRequest }, (_, j) => ({
            base64: files[(start + j) % files.length].toString('base64'),
          })),
        },
      }),
    ),
  );
}

// ---- the service as a child process ----

export interface Service {
  readonly port: number;
  readonly proc: ChildProcess;
  /** Log lines at error level or above, as the service wrote them. */
  readonly errorLogs: string[];
}

/**
 * Starts `advsieve serve` on a free port and waits until it is ready. Unless the caller names an
 * audit log (ADVSIEVE_AUDIT_DB or DATABASE_URL, here or in the environment), the service records
 * into a temporary SQLite file, removed when it stops: benchmarks leave nothing in data/.
 */
export async function startService(env: Record<string, string>): Promise<Service> {
  const audit = temporaryAuditLog({ ...process.env, ...env }, 'advsieve-bench-');
  const proc = spawn(process.execPath, [path.join(PACKAGE_ROOT, 'bin', 'advsieve.js'), 'serve'], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', ...audit.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  audit.removeOnExit(proc);
  const errorLogs: string[] = [];
  const port = await listeningPort(proc, (line) => {
    if (!line.startsWith('{')) return;
    const entry = JSON.parse(line) as { level?: number; msg?: string };
    if ((entry.level ?? 0) >= 50) {
      errorLogs.push(line);
      process.stderr.write(`service: ${entry.msg}\n`);
    }
  });
  for (let i = 0; ; i++) {
    const status = await get(port, '/health/ready').then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) break;
    if (i > 1200) throw new Error('service not ready after 60 s');
    await sleep(50);
  }
  return { port, proc, errorLogs };
}

export async function stopService(s: Service): Promise<void> {
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) return;
  const exited = new Promise((r) => s.proc.once('exit', r));
  s.proc.kill('SIGTERM');
  await exited;
}

/**
 * Runs `script` with `args` in a child process of its own (stdout ignored, stderr shown) and
 * resolves with the one result it sends back (`sendResultAndExit`); rejects if it exits otherwise.
 */
export function resultFromChild<T>(
  script: string,
  args: readonly string[],
  env: Record<string, string>,
  what: string,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = fork(script, [...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    let result: { value: T } | undefined;
    child.on('message', (m) => (result = { value: m as T }));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 && result ? resolve(result.value) : reject(new Error(`${what} exited ${code}`)),
    );
  });
}

/** The child's side of resultFromChild: sends `result` to the parent, then exits 0. */
export async function sendResultAndExit(result: unknown): Promise<never> {
  await new Promise<void>((r) => process.send!(result ?? null, () => r()));
  process.exit(0);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function get(
  port: number,
  p: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      })
      .on('error', reject);
  });
}

/** One GraphQL POST; a 503 whose body says OVERLOADED is a refusal, not a failure. */
export function post(
  agent: http.Agent,
  port: number,
  body: Buffer,
  headers: Record<string, string> = {},
): Promise<{ outcome: Outcome; ms: number; text: string }> {
  const start = performance.now();
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/graphql',
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': body.length, ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          const outcome: Outcome =
            res.statusCode === 200 && !text.includes('"errors"')
              ? 'ok'
              : res.statusCode === 503 && text.includes('"OVERLOADED"')
                ? 'overloaded'
                : 'error';
          resolve({ outcome, ms: performance.now() - start, text });
        });
      },
    );
    req.on('error', (err) => resolve({ outcome: 'error', ms: performance.now() - start, text: err.message }));
    req.end(body);
  });
}

/** Counts of outcomes, and the first few texts of failures (to say what went wrong). */
class Tally {
  readonly latencies: number[] = [];
  overloaded = 0;
  errors = 0;
  readonly errorSamples: string[] = [];

  add(r: { outcome: Outcome; ms: number; text: string }): void {
    if (r.outcome === 'ok') this.latencies.push(r.ms);
    else if (r.outcome === 'overloaded') this.overloaded++;
    else {
      this.errors++;
      if (this.errorSamples.length < 3) this.errorSamples.push(r.text.slice(0, 300));
    }
  }
}

/** Closed loop: `concurrency` clients, each sending its next request when the last is answered. */
export async function closedLoop(
  port: number,
  bodies: readonly Buffer[],
  concurrency: number,
  opts: { seconds: number; warmupSeconds: number; imagesPerRequest: number; headers?: Record<string, string> },
): Promise<LoadFigures> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const tally = new Tally();
  let measuring = false;
  let stop = false;
  const client = async (c: number) => {
    for (let i = c; !stop; i += concurrency) {
      const r = await post(agent, port, bodies[i % bodies.length], opts.headers);
      if (measuring) tally.add(r);
    }
  };
  const running = Array.from({ length: concurrency }, (_, c) => client(c));
  await sleep(opts.warmupSeconds * 1000);
  measuring = true;
  const start = performance.now();
  await sleep(opts.seconds * 1000);
  measuring = false;
  const elapsed = (performance.now() - start) / 1000;
  stop = true;
  await Promise.all(running);
  agent.destroy();
  return figures(tally.latencies, tally, elapsed, opts.imagesPerRequest);
}

/**
 * Open loop: requests sent at a fixed rate whatever the answers (as independent clients would),
 * for latency under a given load and for overload. `onSecond` is called about once a second.
 */
export async function openLoop(
  port: number,
  bodies: readonly Buffer[],
  requestsPerSec: number,
  opts: {
    seconds: number;
    imagesPerRequest: number;
    headers?: Record<string, string>;
    maxSockets?: number;
    onSecond?: () => void;
  },
): Promise<LoadFigures & { errorSamples: string[]; sent: number; drainedSeconds: number }> {
  // Sockets are not the bottleneck: requests beyond them would queue in the client, hiding overload.
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 256 });
  const tally = new Tally();
  const pending = new Set<Promise<void>>();
  const start = performance.now();
  let nextTick = start + 1000;
  let i = 0;
  for (; performance.now() - start < opts.seconds * 1000; i++) {
    const due = start + (i * 1000) / requestsPerSec;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const p: Promise<void> = post(agent, port, bodies[i % bodies.length], opts.headers).then((r) => {
      tally.add(r);
      pending.delete(p);
    });
    pending.add(p);
    if (opts.onSecond && performance.now() >= nextTick) {
      nextTick += 1000;
      opts.onSecond();
    }
  }
  const elapsed = (performance.now() - start) / 1000;
  while (pending.size) await Promise.all(pending);
  // From the first request to the last answer: a service that queues instead of refusing answers late.
  const drainedSeconds = (performance.now() - start) / 1000;
  agent.destroy();
  return {
    ...figures(tally.latencies, tally, elapsed, opts.imagesPerRequest),
    errorSamples: tally.errorSamples,
    sent: i,
    drainedSeconds,
  };
}

// ---- readings ----

/** The service's /metrics text, parsed into `name{labels}` → value. */
export async function metricsOf(port: number, headers: Record<string, string> = {}): Promise<Map<string, number>> {
  const { text } = await get(port, '/metrics', headers);
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

/**
 * The sum of a metric's series (as metricsOf keys them) whose labels include `labels`: over every
 * model, for the per-model metrics, unless `labels` names one.
 */
export function seriesSum(m: ReadonlyMap<string, number>, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const [key, value] of m) {
    if (key !== name && !key.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => key.includes(`${k}="${v}"`))) sum += value;
  }
  return sum;
}

/** Sum and count of a histogram in the service's /metrics, over its series (every model's). */
export async function histogram(port: number, name: string): Promise<{ sum: number; count: number }> {
  const m = await metricsOf(port);
  return { sum: seriesSum(m, `${name}_sum`), count: seriesSum(m, `${name}_count`) };
}

/** Resident set size of a process in bytes, from /proc (Linux): the whole process, workers included. */
export function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(status.match(/^VmRSS:\s+(\d+) kB/m)?.[1]);
  if (!Number.isFinite(kb)) throw new Error(`no VmRSS for process ${pid}`);
  return kb * 1024;
}

/**
 * Whether a series sampled over time is flat: the growth its least-squares line implies from the
 * first sample to the last is within the noise — 3 residual standard deviations or 2 % of the
 * mean, whichever is larger. A leak of a little per request shows as a steady slope far beyond
 * both; a garbage-collected heap's swings do not.
 */
export function flatness(
  ts: readonly number[],
  ys: readonly number[],
): { mean: number; slope: number; growth: number; noise: number; flat: boolean } {
  const fit = linearFit(ts, ys);
  const span = ts.length ? ts[ts.length - 1] - ts[0] : 0;
  const mean = ys.reduce((a, b) => a + b, 0) / Math.max(1, ys.length);
  const growth = fit.slope * span;
  const noise = Math.max(3 * fit.residualSd, 0.02 * Math.abs(mean));
  return { mean, slope: fit.slope, growth, noise, flat: Math.abs(growth) <= noise };
}

/** Least-squares line through (x, y): slope, intercept and the residuals' standard deviation. */
export function linearFit(
  xs: readonly number[],
  ys: readonly number[],
): { slope: number; intercept: number; residualSd: number } {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  const slope = sxx > 0 ? sxy / sxx : 0;
  const intercept = my - slope * mx;
  const ss = ys.reduce((a, y, i) => a + (y - (intercept + slope * xs[i])) ** 2, 0);
  return { slope, intercept, residualSd: Math.sqrt(ss / Math.max(1, n - 2)) };
}
