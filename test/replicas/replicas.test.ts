/**
 * Three replicas (`advsieve serve` child processes) behind HAProxy on loopback, sharing one Redis
 * (the rate limits) and one PostgreSQL (the audit log), all started here: a key's admitted requests
 * across the replicas stay within burst + rate × time; then a load run during which one replica is
 * killed with SIGKILL, and every request, retried by its client with the same `x-request-id`, is
 * answered, with each image's verdict in the audit log exactly once and as the client received it.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Client } from 'pg';
import { Haproxy, startHaproxy } from '../../src/bench/haproxy';
import { fixtureFiles, ROOT, startServer, TestServer } from '../api/helpers';
import { PostgresServer, startPostgres } from '../audit/postgresServer';
import { RedisServer, startRedis } from '../helpers/redisServer';

const REPLICAS = 3;
const LIMITED = { perSecond: 5, burst: 10 };
const SCREEN =
  'mutation($i: [ImageInput!]!) { screen(images: $i) { index prediction { classIndex } detection { adversarial } error { code } } }';

interface Verdict {
  index: number;
  prediction: { classIndex: number } | null;
  detection: { adversarial: boolean } | null;
  error: { code: string } | null;
}

function createKey(id: string, perSecond: number, burst: number): { key: string; entry: object } {
  const out = execFileSync(
    process.execPath,
    [
      'bin/advsieve.js',
      'keys',
      'create',
      '--id',
      id,
      '--scopes',
      'screen',
      '--json',
      '--per-second',
      String(perSecond),
      '--burst',
      String(burst),
    ],
    { cwd: ROOT, encoding: 'utf8' },
  );
  return JSON.parse(out) as { key: string; entry: object };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One POST through HAProxy; a failed connection reads as status 0. */
async function post(
  port: number,
  key: string,
  body: object,
  requestId?: string,
): Promise<{ status: number; servedBy: string | null; body: { data?: unknown; errors?: unknown[] } | undefined }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${key}`,
        ...(requestId ? { 'x-request-id': requestId } : {}),
      },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: { data?: unknown; errors?: unknown[] } | undefined;
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      parsed = undefined; // HAProxy's own 502/503 pages are HTML
    }
    return { status: res.status, servedBy: res.headers.get('x-served-by'), body: parsed };
  } catch {
    return { status: 0, servedBy: null, body: undefined };
  }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-replicas-'));
let redis: RedisServer;
let postgres: PostgresServer;
let replicas: TestServer[] = [];
let haproxy: Haproxy;
const keys = {
  load: createKey('load', 10_000, 10_000),
  limited: createKey('limited', LIMITED.perSecond, LIMITED.burst),
};

beforeAll(async () => {
  [redis, postgres] = await Promise.all([startRedis(), startPostgres('replicas')]);
  const keysFile = path.join(dir, 'keys.json');
  fs.writeFileSync(keysFile, JSON.stringify([keys.load.entry, keys.limited.entry]));
  const env = {
    REDIS_URL: redis.url,
    DATABASE_URL: postgres.url,
    ADVSIEVE_API_KEYS_FILE: keysFile,
    ADVSIEVE_WORKERS: '1',
    ADVSIEVE_DECODE_CONCURRENCY: '1',
    ADVSIEVE_MAX_IMAGES: '8',
  };
  replicas = await Promise.all(Array.from({ length: REPLICAS }, () => startServer(env)));
  haproxy = await startHaproxy(replicas.map((r) => r.port));
  // Until HAProxy's health checks have every replica up: answers from all of them.
  const seen = new Set<string>();
  for (let i = 0; seen.size < REPLICAS; i++) {
    if (i > 400) throw new Error(`HAProxy sends to ${[...seen].join(', ')} only`);
    const r = await fetch(`http://127.0.0.1:${haproxy.port}/health/ready`).catch(() => undefined);
    const by = r?.headers.get('x-served-by');
    if (r?.status === 200 && by) seen.add(by);
    else await sleep(50);
  }
}, 300_000);

afterAll(async () => {
  await haproxy?.stop();
  await Promise.all(replicas.map((r) => r.stop()));
  await Promise.all([redis?.stop(), postgres?.stop()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test("a key's admitted requests across all replicas stay within burst + rate × time", async () => {
  const served = new Set<string>();
  let admitted = 0;
  let limited = 0;
  const start = performance.now();
  const until = start + 3000;
  const client = async () => {
    while (performance.now() < until) {
      const r = await post(haproxy.port, keys.limited.key, { query: '{ model { id } }' });
      if (r.servedBy) served.add(r.servedBy);
      if (r.status === 200) admitted++;
      else if (r.status === 429) limited++;
      else throw new Error(`unexpected answer ${r.status}: ${JSON.stringify(r.body)}`);
    }
  };
  await Promise.all(Array.from({ length: 6 }, client));
  const seconds = (performance.now() - start) / 1000;
  expect(served.size).toBe(REPLICAS); // every replica charged the key
  expect(limited).toBeGreaterThan(0);
  expect(admitted).toBeGreaterThanOrEqual(LIMITED.burst);
  // One bucket for the key, not one per replica (which would admit up to 3 times as many).
  expect(admitted).toBeLessThanOrEqual(Math.floor(LIMITED.burst + LIMITED.perSecond * seconds));
});

test('a retry on another replica (same x-request-id) is answered again and recorded once', async () => {
  const images = fixtureFiles()
    .slice(0, 3)
    .map((f) => ({ base64: fs.readFileSync(f).toString('base64') }));
  const direct = (replica: TestServer) =>
    post(replica.port, keys.load.key, { query: SCREEN, variables: { i: images } }, 'lost-answer-1');
  const first = await direct(replicas[0]); // its answer "lost": the client retries elsewhere
  const retry = await direct(replicas[2]);
  expect([first.status, retry.status]).toEqual([200, 200]);
  expect(retry.body!.data).toEqual(first.body!.data); // the same verdicts
  const db = new Client({ connectionString: postgres.url });
  await db.connect();
  try {
    const { rows } = await db.query<{ image_index: number; request_id: string }>(
      "SELECT image_index, request_id FROM screenings WHERE client_request_id = 'lost-answer-1' ORDER BY image_index",
    );
    expect(rows.map((r) => r.image_index)).toEqual([0, 1, 2]); // once each, not twice
    expect(new Set(rows.map((r) => r.request_id)).size).toBe(1); // all from the first attempt
  } finally {
    await db.end();
  }
});

test('one replica killed mid-run: every request answered, each verdict in the audit log once, as acknowledged', async () => {
  const files = fixtureFiles().map((f) => fs.readFileSync(f).toString('base64'));
  const REQUESTS = 48;
  const PER_REQUEST = 4;
  const acknowledged = new Map<string, Verdict[]>();
  const servedBy: string[] = [];
  let attempts = 0;
  let next = 0;
  let killed: string | undefined;
  let killedAt = 0; // answers received before the kill
  const victim = replicas[1];
  const client = async () => {
    for (let i = next++; i < REQUESTS; i = next++) {
      const id = `run-${i}`;
      const images = Array.from({ length: PER_REQUEST }, (_, j) => ({ base64: files[(i + j) % files.length] }));
      for (let attempt = 1; ; attempt++) {
        attempts++;
        const r = await post(haproxy.port, keys.load.key, { query: SCREEN, variables: { i: images } }, id);
        const data = r.body?.data as { screen: Verdict[] } | null | undefined;
        if (r.status === 200 && !r.body?.errors && data) {
          acknowledged.set(id, data.screen);
          servedBy.push(r.servedBy!);
          break;
        }
        // A lost answer (connection reset, HAProxy's 502/503), or the service's own 503: retry, same id.
        if (![0, 502, 503, 504].includes(r.status) || attempt >= 40)
          throw new Error(`${id}: answer ${r.status} after ${attempt} attempts: ${JSON.stringify(r.body)}`);
        await sleep(100);
      }
      // Mid-run, once the victim has answered some: SIGKILL, with requests of other clients in flight.
      if (!killed && acknowledged.size >= REQUESTS / 3 && servedBy.includes('r2')) {
        killed = 'r2';
        killedAt = servedBy.length;
        victim.proc.kill('SIGKILL');
      }
    }
  };
  await Promise.all(Array.from({ length: 6 }, client));
  expect(killed).toBe('r2');
  expect((await victim.exited).signal).toBe('SIGKILL');
  expect(acknowledged.size).toBe(REQUESTS);
  // The rest of the run went to the other two (past the answers that were on their way at the kill).
  expect(servedBy.length - killedAt).toBeGreaterThan(REQUESTS / 3);
  expect(servedBy.slice(killedAt + 6)).not.toContain('r2');

  const db = new Client({ connectionString: postgres.url });
  await db.connect();
  try {
    const { rows } = await db.query<{
      client_request_id: string;
      image_index: number;
      class_index: number | null;
      adversarial: boolean | null;
      error_code: string | null;
    }>(
      `SELECT client_request_id, image_index, class_index, adversarial, error_code FROM screenings
       WHERE key_id = 'load' AND operation = 'screen' AND client_request_id LIKE 'run-%'`,
    );
    const logged = new Map<string, (typeof rows)[number][]>();
    for (const row of rows) {
      const k = `${row.client_request_id}/${row.image_index}`;
      logged.set(k, [...(logged.get(k) ?? []), row]);
    }
    const expected = [...acknowledged].flatMap(([id, verdicts]) =>
      verdicts.map((v) => ({
        k: `${id}/${v.index}`,
        verdict: [v.prediction?.classIndex ?? null, v.detection?.adversarial ?? null, v.error?.code ?? null],
      })),
    );
    expect(expected).toHaveLength(REQUESTS * PER_REQUEST);
    for (const { k, verdict } of expected) {
      const found = logged.get(k) ?? [];
      expect([k, found.length]).toEqual([k, 1]); // present, and once, however often the request was sent
      expect([k, found[0].class_index, found[0].adversarial, found[0].error_code]).toEqual([k, ...verdict]);
    }
    expect(rows).toHaveLength(REQUESTS * PER_REQUEST); // nothing else either
  } finally {
    await db.end();
  }
  process.stdout.write(`replicas: ${REQUESTS} requests in ${attempts} attempts; answered by ${servedBy.join(' ')}\n`);
});
