/**
 * The audit log through the API, on a started server, once with SQLite (a file in a temporary
 * directory) and once with PostgreSQL (a throwaway server; fails without Debian's `postgresql`):
 * every screened image's verdict is recorded with the request's id and every detector's score,
 * failed images too; `screenings` filters and pages them; an attack's screening is recorded; with
 * the database gone, `screen` answers AUDIT_UNAVAILABLE instead of unrecorded verdicts.
 */
import { spawn } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Client } from 'pg';
import { createApiKey } from '../../src/gateway/apiKeys';
import { PostgresServer, startPostgres } from '../audit/postgresServer';
import { errorCode, fixtureFiles, GqlResponse, ROOT, startServer, TestServer } from './helpers';

const SCREEN = `mutation($images: [ImageInput!]!, $options: ScreenOptions) {
  screen(images: $images, options: $options) {
    index sha256
    prediction { label classIndex confidence }
    detection { adversarial score threshold targetFpr detectors { name score threshold flagged } }
    defense { prediction { classIndex label confidence } }
    error { code }
  }
}`;

const SCREENINGS = `query($filter: ScreeningFilter, $first: Int!, $after: String) {
  screenings(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      id time requestId clientRequestId keyId operation index jobId sha256 byteSize
      prediction { classIndex label confidence }
      adversarial score threshold targetFpr detectors { name score threshold flagged }
      defensePrediction { classIndex label confidence }
      errorCode modelId modelSha256 calibrationSha256 calibrationCreatedAt image
    } }
  }
}`;

interface Node {
  id: string;
  time: string;
  requestId: string;
  clientRequestId: string | null;
  keyId: string | null;
  operation: string;
  index: number;
  sha256: string | null;
  byteSize: number | null;
  prediction: { classIndex: number; label: string; confidence: number } | null;
  adversarial: boolean | null;
  score: number | null;
  threshold: number | null;
  targetFpr: number | null;
  detectors: Array<{ name: string; score: number; threshold: number; flagged: boolean }> | null;
  defensePrediction: { classIndex: number; label: string; confidence: number } | null;
  errorCode: string | null;
  modelId: string;
  modelSha256: string;
  calibrationSha256: string;
  calibrationCreatedAt: string;
  image: string | null;
  jobId: string | null;
}

interface Page {
  screenings: {
    totalCount: number;
    pageInfo: { hasNextPage: boolean; endCursor: string | null };
    edges: Array<{ cursor: string; node: Node }>;
  };
}

const images = fixtureFiles().map((f) => fs.readFileSync(f));
const b64 = (b: Buffer) => b.toString('base64');

async function post<T>(server: TestServer, query: string, variables: object, requestId?: string) {
  const res = await fetch(`${server.base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(requestId ? { 'x-request-id': requestId } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as GqlResponse<T>['body'] };
}

interface ScreenRow {
  index: number;
  sha256: string | null;
  prediction: Node['prediction'];
  detection: Pick<Node, 'score' | 'threshold' | 'targetFpr'> & { adversarial: boolean; detectors: Node['detectors'] };
  defense: { prediction: Node['defensePrediction'] } | null;
  error: { code: string } | null;
}

const page = (server: TestServer, variables: Record<string, unknown>) => post<Page>(server, SCREENINGS, variables);

describe.each(['sqlite', 'postgres'] as const)('audit log (%s) through the API', (backend) => {
  let server: TestServer;
  let postgres: PostgresServer | undefined;
  let dir: string | undefined;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-audit-api-'));
    const env: Record<string, string> = {
      ADVSIEVE_AUDIT_STORE_IMAGES: '1',
      ADVSIEVE_ATTACK_MAX_STEPS: '5',
      ADVSIEVE_AUDIT_TIMEOUT_MS: '1000',
    };
    if (backend === 'postgres') {
      postgres = await startPostgres();
      env.DATABASE_URL = postgres.url;
    } else env.ADVSIEVE_AUDIT_DB = path.join(dir, 'audit.sqlite');
    server = await startServer(env);
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await postgres?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('each screened image is recorded before the answer: request id, verdict, every detector, versions', async () => {
    const sent = [images[2], images[5], images[2]];
    const r = await post<{ screen: ScreenRow[] }>(
      server,
      SCREEN,
      { images: [...sent.map((b) => ({ base64: b64(b) })), { base64: '!!not base64!!' }], options: { defend: true } },
      'audit-req-1',
    );
    expect(r.status).toBe(200);
    const results = r.body.data!.screen;
    expect(server.logs.some((l) => l.includes(`"audit":"${backend}"`))).toBe(true);
    expect(await (await fetch(`${server.base}/health/ready`)).json()).toMatchObject({ audit: backend });
    const p = await page(server, { first: 10, filter: {} });
    const rows = p.body.data!.screenings.edges.map((e) => e.node).filter((n) => n.clientRequestId === 'audit-req-1');
    expect(rows.map((n) => n.index)).toEqual([3, 2, 1, 0]); // newest first: ids follow the list
    const model = await post<{ model: { id: string; sha256: string; calibration: { createdAt: string } } }>(
      server,
      '{ model { id sha256 calibration { createdAt } } }',
      {},
    );
    for (const res of results.slice(0, 3)) {
      const row = rows.find((n) => n.index === res.index)!;
      expect(row).toMatchObject({
        operation: 'screen',
        keyId: null,
        sha256: res.sha256,
        byteSize: sent[res.index].length,
        prediction: res.prediction,
        adversarial: res.detection.adversarial,
        score: res.detection.score,
        threshold: res.detection.threshold,
        targetFpr: res.detection.targetFpr,
        detectors: res.detection.detectors,
        defensePrediction: res.defense!.prediction,
        errorCode: null,
        modelId: model.body.data!.model.id,
        modelSha256: model.body.data!.model.sha256,
        calibrationCreatedAt: model.body.data!.model.calibration.createdAt,
        image: b64(sent[res.index]),
      });
      expect(row.calibrationSha256).toMatch(/^[0-9a-f]{64}$/);
      // The version of the calibration the service read: the SHA-256 of the file's bytes.
      const calibrationBytes = fs.readFileSync(path.join(ROOT, 'models', 'fashion-cnn', 'calibration.json'));
      expect(row.calibrationSha256).toBe(createHash('sha256').update(calibrationBytes).digest('hex'));
      expect(row.detectors!.length).toBeGreaterThanOrEqual(3);
      expect(Math.abs(Date.parse(row.time) - Date.now())).toBeLessThan(60_000);
    }
    expect(rows.find((n) => n.index === 3)).toMatchObject({
      errorCode: 'INVALID_BASE64',
      sha256: null,
      prediction: null,
      adversarial: null,
      detectors: null,
      image: null,
      jobId: null,
    });
  });

  test('screenings pages with cursors (no repeats, no gaps, while rows arrive) and filters', async () => {
    for (let i = 0; i < 6; i++) {
      const r = await post(server, SCREEN, { images: [{ base64: b64(images[6 + i]) }] }, `audit-page-${i}`);
      expect(r.status).toBe(200);
    }
    const total = (await page(server, { first: 1 })).body.data!.screenings.totalCount;
    expect(total).toBe(10);
    const ids: string[] = [];
    let after: string | null = null;
    for (let n = 0; ; n++) {
      const p: { body: { data?: Page | null } } = await page(server, { first: 3, after });
      const s: Page['screenings'] = p.body.data!.screenings;
      ids.push(...s.edges.map((e) => e.node.id));
      // A new request between pages: newer than everything paged, so it does not show up later.
      await post(server, SCREEN, { images: [{ base64: b64(images[n]) }] }, `audit-late-${n}`);
      if (!s.pageInfo.hasNextPage) break;
      after = s.pageInfo.endCursor;
    }
    expect(ids).toHaveLength(10);
    expect(new Set(ids).size).toBe(10);
    expect([...ids].sort((a, b) => Number(b) - Number(a))).toEqual(ids);

    const trouser = (await page(server, { first: 50, filter: {} })).body.data!.screenings.edges.find(
      (e) => e.node.clientRequestId === 'audit-req-1' && e.node.index === 0,
    )!.node.sha256!;
    const bySha = (await page(server, { first: 50, filter: { sha256: trouser.toUpperCase() } })).body.data!.screenings;
    expect(bySha.edges.length).toBeGreaterThanOrEqual(2);
    expect(bySha.edges.every((e) => e.node.sha256 === trouser)).toBe(true);
    expect(bySha.totalCount).toBe(bySha.edges.length);

    const all = (await page(server, { first: 500 })).body.data!.screenings.edges.map((e) => e.node);
    const flagged = (await page(server, { first: 500, filter: { flagged: true } })).body.data!.screenings;
    const clean = (await page(server, { first: 500, filter: { flagged: false } })).body.data!.screenings;
    expect(flagged.edges.map((e) => e.node.id)).toEqual(all.filter((n) => n.adversarial === true).map((n) => n.id));
    expect(clean.edges.map((e) => e.node.id)).toEqual(all.filter((n) => n.adversarial === false).map((n) => n.id));
    const future = (await page(server, { first: 5, filter: { since: new Date(Date.now() + 60_000).toISOString() } }))
      .body.data!.screenings;
    expect(future.edges).toEqual([]);
    expect(future.pageInfo).toEqual({ hasNextPage: false, endCursor: null });
    const past = (await page(server, { first: 500, filter: { until: new Date(Date.now() + 60_000).toISOString() } }))
      .body.data!.screenings;
    expect(past.edges).toHaveLength(all.length);
  });

  test('bad arguments are BAD_USER_INPUT', async () => {
    for (const variables of [
      { first: 5, after: 'not-a-cursor' },
      { first: 0 },
      { first: 501 },
      { first: 5, filter: { sha256: 'abc' } },
    ]) {
      const r = await page(server, variables);
      expect([r.status, errorCode(r as GqlResponse<unknown>)]).toEqual([400, 'BAD_USER_INPUT']);
    }
  });

  test('an attack records the screening of the adversarial image it made', async () => {
    const r = await post<{ attack: { screening: { sha256: string; detection: { score: number } } } }>(
      server,
      `mutation($i: ImageInput!) { attack(image: $i, method: FGSM, epsilon: 0.1) {
         adversarialImage screening { sha256 detection { score } } error { code } } }`,
      { i: { base64: b64(images[0]) } },
      'audit-attack',
    );
    expect(r.status).toBe(200);
    const s = r.body.data!.attack.screening;
    const rows = (await page(server, { first: 5, filter: { sha256: s.sha256 } })).body.data!.screenings.edges;
    expect(rows.map((e) => e.node)).toEqual([
      expect.objectContaining({
        operation: 'attack',
        clientRequestId: 'audit-attack',
        score: s.detection.score,
        image: (r.body.data!.attack as unknown as { adversarialImage: string }).adversarialImage,
      }),
    ]);
  });

  if (backend === 'postgres') {
    test('a write that hangs (table locked) answers AUDIT_UNAVAILABLE at ADVSIEVE_AUDIT_TIMEOUT_MS; then recovers', async () => {
      const locker = new Client({ connectionString: postgres!.url });
      await locker.connect();
      try {
        await locker.query('BEGIN');
        await locker.query('LOCK TABLE screenings IN ACCESS EXCLUSIVE MODE');
        const started = Date.now();
        const hung = await Promise.all(
          [1, 2, 3].map((n) => post(server, SCREEN, { images: [{ base64: b64(images[n]) }] }, `audit-hung-${n}`)),
        );
        expect(Date.now() - started).toBeLessThan(5000);
        for (const r of hung) {
          expect([r.status, errorCode(r as GqlResponse<unknown>)]).toEqual([503, 'AUDIT_UNAVAILABLE']);
          expect(r.body.data ?? null).toBeNull();
        }
        // The record's own limit, or the server cancelling the statement (the same 1 s), comes first.
        const logged = await server.waitForLog((l) => l.includes('audit-hung-1') && l.includes('write failed'));
        expect(logged).toMatch(/timed out|canceling statement due to statement timeout/);
      } finally {
        await locker.query('ROLLBACK');
        await locker.end();
      }
      const after = await post(server, SCREEN, { images: [{ base64: b64(images[4]) }] }, 'audit-after-hang');
      expect(after.status).toBe(200);
    });

    test('with the database gone, screen answers AUDIT_UNAVAILABLE (503) and no verdict', async () => {
      await postgres!.stop();
      const r = await post(server, SCREEN, { images: [{ base64: b64(images[1]) }] }, 'audit-down');
      expect(r.status).toBe(503);
      expect(errorCode(r as GqlResponse<unknown>)).toBe('AUDIT_UNAVAILABLE');
      expect(r.body.data ?? null).toBeNull();
      const q = await page(server, { first: 1 });
      expect(errorCode(q as GqlResponse<unknown>)).toBe('AUDIT_UNAVAILABLE');
    });
  }
});

describe('with API keys: the key id is recorded, and only an admin key reads the log', () => {
  const client = createApiKey('client-a', ['screen']);
  const ops = createApiKey('ops', ['admin']);
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({ ADVSIEVE_API_KEYS: JSON.stringify([client.entry, ops.entry]) });
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
  });

  const as = async (key: string, query: string, variables: object, requestId?: string) => {
    const res = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${key}`,
        ...(requestId ? { 'x-request-id': requestId } : {}),
      },
      body: JSON.stringify({ query, variables }),
    });
    return { status: res.status, body: (await res.json()) as GqlResponse<Page>['body'] };
  };

  test('screen as client-a; client-a may not read screenings, ops may, and sees client-a', async () => {
    const screened = await as(client.key, SCREEN, { images: [{ base64: b64(images[3]) }] }, 'keyed-1');
    expect(screened.status).toBe(200);
    const refused = await as(client.key, SCREENINGS, { first: 5 });
    expect([refused.status, errorCode(refused as GqlResponse<unknown>)]).toEqual([403, 'FORBIDDEN']);
    const read = await as(ops.key, SCREENINGS, { first: 5 });
    expect(read.status).toBe(200);
    expect(read.body.data!.screenings.edges.map((e) => [e.node.clientRequestId, e.node.keyId])).toEqual([
      ['keyed-1', 'client-a'],
    ]);
  });

  test('filter.keyId and filter.modelId select the rows of one key and of one model', async () => {
    await as(client.key, SCREEN, { images: [{ base64: b64(images[5]) }] }, 'keyed-2');
    const rowsOf = async (filter: object) => {
      const read = await as(ops.key, SCREENINGS, { first: 10, filter });
      expect(read.status).toBe(200);
      return read.body.data!.screenings.edges.map((e) => [e.node.clientRequestId, e.node.keyId, e.node.modelId]);
    };
    const both = [
      ['keyed-2', 'client-a', 'fashion-cnn'],
      ['keyed-1', 'client-a', 'fashion-cnn'],
    ];
    expect(await rowsOf({ keyId: 'client-a' })).toEqual(both);
    expect(await rowsOf({ keyId: 'ops' })).toEqual([]);
    expect(await rowsOf({ modelId: 'fashion-cnn', keyId: 'client-a' })).toEqual(both);
    expect(await rowsOf({ modelId: 'nsfw-mobilenetv2' })).toEqual([]);
  });
});

/** `advsieve serve` with `env`: its exit status and what it printed. */
function serveUntilExit(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const proc = spawn(process.execPath, ['bin/advsieve.js', 'serve'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'warn', ADVSIEVE_BACKEND: 'wasm', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout.on('data', (c: Buffer) => (output += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (output += c.toString()));
  return new Promise((resolve) => proc.once('exit', (code) => resolve({ code, output })));
}

describe('a start with an unusable audit log stops, saying which and why', () => {
  test('DATABASE_URL that does not answer (the password is not printed)', async () => {
    const r = await serveUntilExit({ DATABASE_URL: 'postgresql://advsieve:s3cret@127.0.0.1:1/audit' });
    expect(r.code).toBe(1);
    expect(r.output).toMatch(
      /cannot use PostgreSQL at postgresql:\/\/advsieve:\*\*\*@127\.0\.0\.1:1\/audit \(DATABASE_URL\)/,
    );
    expect(r.output).not.toContain('s3cret');
  });

  test('ADVSIEVE_AUDIT_DB that cannot be created', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-audit-bad-'));
    fs.writeFileSync(path.join(dir, 'file'), '');
    try {
      const r = await serveUntilExit({ ADVSIEVE_AUDIT_DB: path.join(dir, 'file', 'audit.sqlite') });
      expect(r.code).toBe(1);
      expect(r.output).toContain(
        `cannot open the SQLite file ${path.join(dir, 'file', 'audit.sqlite')} (ADVSIEVE_AUDIT_DB)`,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
