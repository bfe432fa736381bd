/**
 * `npm run bench:hostile`: each class of attack on the gateway (issue "Gateway under attack") run
 * against a production-mode service with API keys, while a victim with a key of its own keeps
 * screening one image every 200 ms and a probe reads /health/live every 20 ms. Per scenario it
 * prints what the attacking requests got (HTTP status and code), what the victim got during and
 * right after the attack (answers, status, latency), /health/live's latency, the service's RSS,
 * and the requests still holding an admission place once the attacker is gone. Last line: JSON.
 *
 * Everything runs on loopback against a child service this script starts and stops. Options
 * (environment): BENCH_HOSTILE_ONLY (comma-separated scenario names), BENCH_HOSTILE_SECONDS
 * (longest a scenario runs, default 12), and the service's own ADVSIEVE_* settings.
 */
import * as http from 'http';
import * as net from 'net';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createApiKey } from '../gateway/apiKeys';
import {
  fixtureBytes,
  get,
  metricsOf,
  percentile,
  resultFromChild,
  round,
  rssBytes,
  sendResultAndExit,
  sleep,
  startService,
  stopService,
} from './load';
import { openFileLimit } from '../util/openFileLimit';
import { floodConnections, hostileScenarios, HostileScenario, ScenarioTools } from './hostileScenarios';

const SECONDS = Number(process.env.BENCH_HOSTILE_SECONDS ?? 12);
/** Most connections one flood process holds (BENCH_HOSTILE_CONNECTIONS; its descriptor limit caps it too). */
const FLOOD_PER_PROCESS = Number(process.env.BENCH_HOSTILE_CONNECTIONS ?? 30_000);
const ONLY = process.env.BENCH_HOSTILE_ONLY?.split(',').map((s) => s.trim());

/** The victim's own request: one fixture screened, with its own key. */
const VICTIM_QUERY =
  'mutation($i:[ImageInput!]!){screen(images:$i){index prediction{label} detection{adversarial} error{code}}}';

interface Answer {
  status: number;
  code: string;
  ms: number;
}

/** One request over a fresh connection; status 0 and code 'NETWORK' when the connection failed. */
export function request(
  port: number,
  opts: { method?: string; path?: string; headers?: Record<string, string | number>; body?: Buffer | string },
): Promise<Answer & { text: string }> {
  const start = performance.now();
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'POST',
        path: opts.path ?? '/graphql',
        agent: false,
        headers: {
          ...(opts.body !== undefined
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(opts.body) }
            : {}),
          ...opts.headers,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, code: codeOf(text), ms: performance.now() - start, text }),
        );
      },
    );
    req.on('error', (err) => resolve({ status: 0, code: 'NETWORK', ms: performance.now() - start, text: err.message }));
    req.setTimeout(60_000, () => req.destroy(new Error('client timeout')));
    req.end(opts.body);
  });
}

/** The first error code of a GraphQL answer, else the first per-image error code, else 'ok'. */
export function codeOf(text: string): string {
  try {
    const body = JSON.parse(text) as {
      errors?: Array<{ extensions?: { code?: string } }>;
      data?: Record<string, unknown>;
    };
    const first = Array.isArray(body) ? (body as (typeof body)[])[0] : body;
    if (first.errors?.length) return first.errors[0].extensions?.code ?? 'ERROR';
    for (const value of Object.values(first.data ?? {})) {
      for (const item of Array.isArray(value) ? value : [value]) {
        const code = (item as { error?: { code?: string } } | null)?.error?.code;
        if (code) return code;
      }
    }
    return 'ok';
  } catch {
    return text.length ? 'NOT_JSON' : 'EMPTY';
  }
}

function summary(answers: readonly Answer[]): {
  n: number;
  statuses: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
} {
  const statuses: Record<string, number> = {};
  for (const a of answers) statuses[`${a.status} ${a.code}`] = (statuses[`${a.status} ${a.code}`] ?? 0) + 1;
  const ms = answers.map((a) => a.ms).sort((x, y) => x - y);
  return {
    n: answers.length,
    statuses,
    p50Ms: round(percentile(ms, 0.5)),
    p99Ms: round(percentile(ms, 0.99)),
    maxMs: round(ms[ms.length - 1] ?? NaN),
  };
}

/** Runs `body` while the victim screens and the probe reads /health/live; returns their answers. */
async function underWatch<T>(
  port: number,
  victimKey: string,
  body: () => Promise<T>,
): Promise<{ result: T; victim: Answer[]; live: Answer[]; rssMaxMB: number }> {
  const fixture = fixtureBytes()[2];
  const victimBody = JSON.stringify({
    query: VICTIM_QUERY,
    variables: { i: [{ base64: fixture.toString('base64') }] },
  });
  const victim: Answer[] = [];
  const live: Answer[] = [];
  let stop = false;
  let rssMaxMB = 0;
  const pid = serviceProc!.pid!;
  const victimLoop = (async () => {
    while (!stop) {
      const pending = request(port, { body: victimBody, headers: { authorization: `Bearer ${victimKey}` } });
      await Promise.race([sleep(200), pending]);
      void pending.then((a) => victim.push(a));
      await sleep(200);
    }
  })();
  const liveLoop = (async () => {
    while (!stop) {
      const start = performance.now();
      const r = await get(port, '/health/live').catch(() => ({ status: 0, text: '' }));
      live.push({ status: r.status, code: r.status === 200 ? 'ok' : 'DOWN', ms: performance.now() - start });
      rssMaxMB = Math.max(rssMaxMB, rssBytes(pid) / 2 ** 20);
      await sleep(20);
    }
  })();
  try {
    const result = await body();
    return { result, victim, live, rssMaxMB };
  } finally {
    stop = true;
    await Promise.all([victimLoop, liveLoop]);
  }
}

let serviceProc: import('child_process').ChildProcess | undefined;

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-hostile-'));
  const attacker = createApiKey('attacker', ['screen']);
  const victim = createApiKey('victim', ['screen']);
  const admin = createApiKey('ops', ['admin']);
  const keysFile = path.join(dir, 'keys.json');
  fs.writeFileSync(keysFile, JSON.stringify([attacker.entry, victim.entry, admin.entry]));
  const scenarios = hostileScenarios.filter((s) => !ONLY || ONLY.includes(s.name));
  const rows: Array<Record<string, unknown>> = [];
  for (const scenario of scenarios) {
    // A fresh service per scenario: one scenario's damage must not be blamed on the next.
    const service = await startService({ NODE_ENV: 'production', ADVSIEVE_API_KEYS_FILE: keysFile, ...scenario.env });
    serviceProc = service.proc;
    try {
      rows.push(await runScenario(scenario, service.port, attacker.key, victim.key, admin.key));
    } finally {
      const alive = service.proc.exitCode === null && service.proc.signalCode === null;
      if (!alive) rows[rows.length - 1] = { ...rows[rows.length - 1], serviceDied: true };
      await stopService(service);
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  for (const r of rows) process.stderr.write(`${JSON.stringify(r)}\n`);
  console.log(JSON.stringify({ bench: 'hostile', seconds: SECONDS, scenarios: rows }));
}

async function runScenario(
  scenario: HostileScenario,
  port: number,
  attackerKey: string,
  victimKey: string,
  adminKey: string,
): Promise<Record<string, unknown>> {
  process.stderr.write(`hostile: ${scenario.name} — ${scenario.what}\n`);
  // Warm: the first requests of a fresh service pay for compilation and the decode processes' start.
  const warmBody = JSON.stringify({
    query: VICTIM_QUERY,
    variables: { i: [{ base64: fixtureBytes()[2].toString('base64') }] },
  });
  for (let i = 0; i < 5; i++)
    await request(port, { body: warmBody, headers: { authorization: `Bearer ${victimKey}` } });
  // The attacker runs in a process of its own: building and sending its bodies would otherwise
  // delay this process's probes, and their latency would be the client's, not the service's.
  const watched = await underWatch(port, victimKey, () => attackFromChild(scenario.name, port, attackerKey));
  // Right after: can a good request get in, and how many places are still held?
  await sleep(500);
  const after = await request(port, {
    body: JSON.stringify({ query: VICTIM_QUERY, variables: { i: [{ base64: fixtureBytes()[2].toString('base64') }] } }),
    headers: { authorization: `Bearer ${victimKey}` },
  });
  const ready = await get(port, '/health/ready').catch(() => ({ status: 0, text: '' }));
  const metrics = await metricsOf(port, { authorization: `Bearer ${adminKey}` }).catch(() => new Map<string, number>());
  const inFlight = [...metrics].find(([k]) => k.startsWith('advsieve_requests_in_flight'))?.[1];
  return {
    scenario: scenario.name,
    attacker: scenario.summarise ? scenario.summarise(watched.result) : watched.result,
    victimDuring: summary(watched.victim),
    healthLive: summary(watched.live),
    rssMaxMB: round(watched.rssMaxMB),
    victimAfter: { status: after.status, code: after.code, ms: round(after.ms) },
    readyAfter: ready.status,
    inFlightAfter: inFlight ?? null,
  };
}

function toolsFor(port: number, attackerKey: string): ScenarioTools {
  return {
    port,
    attackerKey,
    seconds: SECONDS,
    request: (opts) => request(port, opts),
    rawSocket: () =>
      new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1', () => resolve(s));
        s.on('error', reject);
      }),
  };
}

/** Runs one scenario's attack in a child process (this script, `--attack NAME`); resolves with its result. */
function attackFromChild(name: string, port: number, attackerKey: string): Promise<unknown> {
  return resultFromChild(
    __filename,
    ['--attack', name],
    { HOSTILE_PORT: String(port), HOSTILE_KEY: attackerKey },
    `attacker ${name}`,
  );
}

/** The child's side: run the named scenario and send its result to the parent. */
async function attackerMain(name: string): Promise<void> {
  const scenario = hostileScenarios.find((s) => s.name === name);
  if (!scenario) throw new Error(`no scenario ${name}`);
  await sendResultAndExit(await scenario.run(toolsFor(Number(process.env.HOSTILE_PORT), process.env.HOSTILE_KEY!)));
}

/** A connection flood's helper: one address's connections (hostileScenarios' floodConnections). */
async function floodMain(localAddress: string): Promise<void> {
  const wanted = Math.min(FLOOD_PER_PROCESS, openFileLimit() - 200);
  await sendResultAndExit(await floodConnections(Number(process.env.HOSTILE_PORT), localAddress, wanted, SECONDS));
}

const attackArg = process.argv.indexOf('--attack');
const floodArg = process.argv.indexOf('--flood');
(attackArg >= 0
  ? attackerMain(process.argv[attackArg + 1])
  : floodArg >= 0
    ? floodMain(process.argv[floodArg + 1])
    : main()
).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
