/**
 * The gateway against started servers over HTTP. One server with API keys made by the `keys`
 * CLI (scopes, a rate-limited key, /metrics for admins, query and batch limits at their defaults);
 * one in production with trusted documents and /metrics on a port of its own.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { documentHash } from '../../src/gateway/trustedDocuments';
import { fixtureFiles, ROOT, startServer, TestServer } from './helpers';

const trouser = fs.readFileSync(fixtureFiles().find((f) => f.includes('trouser'))!).toString('base64');
const SCREEN = 'mutation($i: [ImageInput!]!) { screen(images: $i) { index prediction { label } error { code } } }';
const MODEL = '{ model { id } }';

interface Reply {
  status: number;
  headers: Headers;
  body: {
    data?: Record<string, unknown> | null;
    errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
  };
}

async function post(server: TestServer, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(`${server.base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Reply['body'] };
}

const codeOf = (r: Reply) => r.body.errors?.[0]?.extensions?.code;
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/** A key made by the CLI, as an operator would: `advsieve keys create ... --json`. */
function createKey(id: string, scopes: string, extra: string[] = []): { key: string; entry: object } {
  const out = execFileSync(
    process.execPath,
    ['bin/advsieve.js', 'keys', 'create', '--id', id, '--scopes', scopes, '--json', ...extra],
    {
      cwd: ROOT,
      encoding: 'utf8',
    },
  );
  return JSON.parse(out) as { key: string; entry: object };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-gateway-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('with API keys', () => {
  let server: TestServer;
  const keys = {
    screen: createKey('screener', 'screen'),
    attack: createKey('red-team', 'screen,attack'),
    admin: createKey('ops', 'admin'),
    limited: createKey('slow', 'screen', ['--per-second', '2', '--burst', '4']),
  };

  beforeAll(async () => {
    const file = path.join(dir, 'keys.json');
    fs.writeFileSync(file, JSON.stringify(Object.values(keys).map((k) => k.entry)));
    server = await startServer({
      ADVSIEVE_API_KEYS_FILE: file,
      ADVSIEVE_MAX_IMAGES: '4',
      ADVSIEVE_WORKERS: '1',
      NODE_ENV: 'development',
    });
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
  });

  test('the CLI prints the key once, with the entry to configure', () => {
    const text = execFileSync(
      process.execPath,
      ['bin/advsieve.js', 'keys', 'create', '--id', 'x', '--scopes', 'screen'],
      {
        cwd: ROOT,
        encoding: 'utf8',
      },
    );
    const key = /asv_x_[A-Za-z0-9_-]{43}/.exec(text)![0];
    expect(text.split(key).length).toBe(2); // shown once
    expect(text).toContain('"sha256":"');
  });

  test('no key: 401 UNAUTHENTICATED with a Bearer challenge; a wrong key too; health stays open', async () => {
    const none = await post(server, { query: MODEL });
    expect(none.status).toBe(401);
    expect(codeOf(none)).toBe('UNAUTHENTICATED');
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await post(server, { query: MODEL }, bearer(keys.screen.key.slice(0, -2) + 'xx'));
    expect([wrong.status, codeOf(wrong)]).toEqual([401, 'UNAUTHENTICATED']);
    const unknown = await post(server, { query: MODEL }, { 'x-api-key': 'asv_nobody_' + 'a'.repeat(43) });
    expect(unknown.status).toBe(401);
    expect((await fetch(`${server.base}/health/live`)).status).toBe(200);
    expect((await fetch(`${server.base}/health/ready`)).status).toBe(200);
  });

  test('Bearer and x-api-key both work; the key is checked before an upload is read', async () => {
    const a = await post(server, { query: MODEL }, bearer(keys.screen.key));
    expect(a.status).toBe(200);
    expect(a.body.data).toEqual({ model: { id: 'fashion-cnn' } });
    const b = await post(
      server,
      { query: SCREEN, variables: { i: [{ base64: trouser }] } },
      { 'x-api-key': keys.screen.key },
    );
    expect(b.body.errors).toBeUndefined();
    expect(b.body.data).toEqual({ screen: [{ index: 0, prediction: { label: 'Trouser' }, error: null }] });
    const upload = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data; boundary=x', 'apollo-require-preflight': 'true' },
      body: '--x\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{"query":"{ model { id } }"}\r\n--x--\r\n',
    });
    expect(upload.status).toBe(401);
  });

  test('scopes: screen cannot attack nor read the audit log (FORBIDDEN 403); attack and admin keys can', async () => {
    const attack = `mutation($x: ImageInput!) { attack(image: $x, method: FGSM, epsilon: 0.05) { success } }`;
    const audit = '{ screenings(first: 1) { edges { node { id } } } }';
    const denied = await post(
      server,
      { query: attack, variables: { x: { base64: trouser } } },
      bearer(keys.screen.key),
    );
    expect([denied.status, codeOf(denied)]).toEqual([403, 'FORBIDDEN']);
    expect(denied.body.errors![0].message).toMatch(/'screener' lacks the scope 'attack'/);
    const notAdmin = await post(server, { query: audit }, bearer(keys.screen.key));
    expect([notAdmin.status, codeOf(notAdmin)]).toEqual([403, 'FORBIDDEN']);
    const allowed = await post(
      server,
      { query: attack, variables: { x: { base64: trouser } } },
      bearer(keys.attack.key),
    );
    expect(allowed.body.errors).toBeUndefined();
    expect(typeof (allowed.body.data!.attack as { success: boolean }).success).toBe('boolean');
    // The principal reaches the resolvers: the audit log names the key that screened.
    const admin = await post(
      server,
      { query: '{ screenings(first: 50) { edges { node { keyId } } } }' },
      bearer(keys.admin.key),
    );
    expect(admin.body.errors).toBeUndefined();
    const keyIds = (admin.body.data!.screenings as { edges: Array<{ node: { keyId: string } }> }).edges.map(
      (e) => e.node.keyId,
    );
    expect(keyIds).toContain('screener');
    const adminScreens = await post(server, { query: MODEL }, bearer(keys.admin.key));
    expect(codeOf(adminScreens)).toBe('FORBIDDEN'); // admin does not imply screen
  });

  test('/metrics on the main port needs an admin key', async () => {
    const get = (headers: Record<string, string> = {}) => fetch(`${server.base}/metrics`, { headers });
    expect((await get()).status).toBe(401);
    expect((await get(bearer(keys.screen.key))).status).toBe(403);
    const ok = await get(bearer(keys.admin.key));
    expect(ok.status).toBe(200);
    expect(await ok.text()).toMatch(/advsieve_requests_total\{operation="none",outcome="UNAUTHENTICATED"\} \d+/);
  });

  test('rate limit: a burst, then RATE_LIMITED 429 with Retry-After; after the hint, requests run again', async () => {
    const key = bearer(keys.limited.key); // 2 tokens per second, 4 at most; a request costs 1 + its images
    const full = await post(
      server,
      { query: SCREEN, variables: { i: [{ base64: trouser }, { base64: trouser }, { base64: trouser }] } },
      key,
    );
    expect(full.body.errors).toBeUndefined();
    // At the door: the bucket is empty, nothing of the request is read.
    const door = await post(server, { query: MODEL }, key);
    expect([door.status, codeOf(door)]).toEqual([429, 'RATE_LIMITED']);
    const wait = door.body.errors![0].extensions!.retryAfterMs as number;
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(500);
    expect(Number(door.headers.get('retry-after'))).toBe(1);
    await new Promise((r) => setTimeout(r, wait));
    // The door's token is there again, but not the images': refused when the field reads them.
    const images = await post(
      server,
      { query: SCREEN, variables: { i: [{ base64: trouser }, { base64: trouser }] } },
      key,
    );
    expect([images.status, codeOf(images)]).toEqual([429, 'RATE_LIMITED']);
    expect(images.headers.get('retry-after')).toBeTruthy();
    await new Promise((r) => setTimeout(r, (images.body.errors![0].extensions!.retryAfterMs as number) + 600));
    const again = await post(server, { query: SCREEN, variables: { i: [{ base64: trouser }] } }, key);
    expect(again.body.errors).toBeUndefined();
    // Other keys have buckets of their own.
    expect((await post(server, { query: MODEL }, bearer(keys.screen.key))).status).toBe(200);
  });

  test('deep, aliased, long and costly documents and big batches: each its code and 400; a good request right after', async () => {
    const key = bearer(keys.screen.key);
    let nested = 'b';
    for (let i = 0; i < 30; i++) nested = `a { ${nested} }`;
    const attacks: Array<[string, unknown]> = [
      ['QUERY_TOO_DEEP', { query: `{ model { ${nested} } }` }],
      ['TOO_MANY_ALIASES', { query: `{ ${Array.from({ length: 40 }, (_, i) => `m${i}: model { id }`).join(' ')} }` }],
      ['TOO_MANY_TOKENS', { query: `{ model { ${'id '.repeat(5000)} } }` }],
      ['QUERY_TOO_COSTLY', { query: '{ screenings(first: 1000000) { edges { node { id score } } } }' }],
      ['TOO_MANY_OPERATIONS', Array.from({ length: 9 }, () => ({ query: MODEL }))],
    ];
    for (const [code, body] of attacks) {
      const r = await post(server, body, key);
      // Only the limits' errors (the 30-deep document is too costly as well), never the schema's.
      const codes = r.body.errors!.map((e) => e.extensions!.code);
      expect({ code, status: r.status, codes }).toEqual({
        code,
        status: 400,
        codes: code === 'QUERY_TOO_DEEP' ? [code, 'QUERY_TOO_COSTLY'] : [code],
      });
      expect(r.body.errors![0].extensions!.limitValue).toEqual(expect.any(Number));
      const good = await post(server, { query: MODEL }, key);
      expect(good.body.data).toEqual({ model: { id: 'fashion-cnn' } });
    }
  });

  test('batches within the limit run; the images limit counts across their operations', async () => {
    const key = bearer(keys.screen.key);
    const two = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...key },
      body: JSON.stringify([{ query: MODEL }, { query: '{ limits { maxImages } }' }]),
    });
    expect(await two.json()).toEqual([
      { data: { model: { id: 'fashion-cnn' } } },
      { data: { limits: { maxImages: 4 } } },
    ]);
    const three = { query: SCREEN, variables: { i: [{ base64: trouser }, { base64: trouser }, { base64: trouser }] } };
    const batch = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...key },
      body: JSON.stringify([three, three]),
    });
    const answers = (await batch.json()) as Array<Reply['body']>;
    expect(answers.map((a) => a.errors?.[0]?.extensions?.code ?? 'ok').sort()).toEqual(['PAYLOAD_TOO_LARGE', 'ok']);
    // And within one operation, as before.
    const five = { query: SCREEN, variables: { i: Array.from({ length: 5 }, () => ({ base64: trouser })) } };
    const r = await post(server, five, key);
    expect([r.status, codeOf(r)]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
  });

  test('outside production the landing page is served, without a key', async () => {
    const page = await fetch(`${server.base}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
  });
});

describe('production, trusted documents, /metrics apart', () => {
  let server: TestServer;
  let metricsPort: number;
  const INTROSPECT = '{ __schema { queryType { name } } }';
  const listed = [MODEL, SCREEN, INTROSPECT, '{ model { idd } }'];

  beforeAll(async () => {
    const manifest = {
      format: 'apollo-persisted-query-manifest',
      version: 1,
      operations: listed.map((body, i) => ({ id: documentHash(body), name: `op${i}`, type: 'query', body })),
    };
    const file = path.join(dir, 'manifest.json');
    fs.writeFileSync(file, JSON.stringify(manifest));
    metricsPort = await freePort();
    server = await startServer({
      NODE_ENV: 'production',
      ADVSIEVE_TRUSTED_DOCUMENTS: file,
      ADVSIEVE_METRICS: String(metricsPort),
      ADVSIEVE_WORKERS: '1',
    });
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
  });

  test('trusted documents run by body and by hash (POST and GET); anything else is PERSISTED_QUERY_NOT_ALLOWED', async () => {
    const byBody = await post(server, { query: SCREEN, variables: { i: [{ base64: trouser }] } });
    expect(byBody.body.errors).toBeUndefined();
    const persisted = { persistedQuery: { version: 1, sha256Hash: documentHash(MODEL) } };
    const byHash = await post(server, { extensions: persisted });
    expect(byHash.body.data).toEqual({ model: { id: 'fashion-cnn' } });
    const get = await fetch(`${server.base}/graphql?extensions=${encodeURIComponent(JSON.stringify(persisted))}`, {
      headers: { 'apollo-require-preflight': 'true' },
    });
    expect(await get.json()).toEqual({ data: { model: { id: 'fashion-cnn' } } });
    const unlisted = await post(server, { query: '{ model { id sha256 } }' });
    expect([unlisted.status, codeOf(unlisted)]).toEqual([400, 'PERSISTED_QUERY_NOT_ALLOWED']);
    const reformatted = await post(server, { query: MODEL.replace(' ', '  ') });
    expect(codeOf(reformatted)).toBe('PERSISTED_QUERY_NOT_ALLOWED');
    const unknownHash = await post(server, {
      extensions: { persistedQuery: { version: 1, sha256Hash: 'f'.repeat(64) } },
    });
    expect([unknownHash.status, codeOf(unknownHash)]).toEqual([400, 'PERSISTED_QUERY_NOT_ALLOWED']);
    const inBatch = await post(server, [{ query: MODEL }, { query: '{ limits { maxImages } }' }]);
    expect(codeOf(inBatch)).toBe('PERSISTED_QUERY_NOT_ALLOWED');
  });

  test('production: introspection refused, no landing page, no field suggestions; no keys and the API stays open', async () => {
    const r = await post(server, { query: INTROSPECT });
    expect(r.status).toBe(400);
    expect(r.body.errors![0].message).toMatch(/introspection is not allowed/);
    const page = await fetch(`${server.base}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.headers.get('content-type') ?? '').not.toMatch(/text\/html/);
    const typo = await post(server, { query: '{ model { idd } }' });
    expect(codeOf(typo)).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(typo.body.errors![0].message).not.toMatch(/Did you mean/);
  });

  test('/metrics has a listener of its own on loopback; the main port has none', async () => {
    expect((await fetch(`${server.base}/metrics`)).status).toBe(404);
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(
      /advsieve_requests_total\{operation="none",outcome="PERSISTED_QUERY_NOT_ALLOWED"\}/,
    );
    expect(server.logs.some((l) => l.includes(`"metricsPort":${metricsPort}`))).toBe(true);
  });
});
