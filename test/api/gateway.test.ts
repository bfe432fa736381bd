/**
 * The gateway against started servers over HTTP. One server with API keys made by the `keys`
 * CLI (scopes, a rate-limited key, /metrics for admins, query and batch limits at their defaults);
 * one in production with trusted documents and /metrics on a port of its own.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { documentHash } from '../../src/gateway/trustedDocuments';
import { fixtureFiles, JsonReply, multipartBody, postJson, ROOT, startServer, TestServer } from './helpers';

const trouser = fs.readFileSync(fixtureFiles().find((f) => f.includes('trouser'))!).toString('base64');
const SCREEN = 'mutation($i: [ImageInput!]!) { screen(images: $i) { index prediction { label } error { code } } }';
const MODEL = '{ model { id } }';

/** A request sent byte for byte as written (fetch would normalise the path and the query). */
function rawRequest(server: TestServer, target: string, headers: Record<string, string> = {}): Promise<JsonReply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, path: target, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        const type = res.headers['content-type'] ?? '';
        resolve({
          status: res.statusCode!,
          headers: new Headers(res.headers as Record<string, string>),
          body: type.includes('json') ? (JSON.parse(text) as JsonReply['body']) : { data: { html: text.slice(0, 40) } },
        });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

const codeOf = (r: JsonReply) => r.body.errors?.[0]?.extensions?.code;
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
    const none = await postJson(server, { query: MODEL });
    expect(none.status).toBe(401);
    expect(codeOf(none)).toBe('UNAUTHENTICATED');
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await postJson(server, { query: MODEL }, bearer(keys.screen.key.slice(0, -2) + 'xx'));
    expect([wrong.status, codeOf(wrong)]).toEqual([401, 'UNAUTHENTICATED']);
    const unknown = await postJson(server, { query: MODEL }, { 'x-api-key': 'asv_nobody_' + 'a'.repeat(43) });
    expect(unknown.status).toBe(401);
    expect((await fetch(`${server.base}/health/live`)).status).toBe(200);
    expect((await fetch(`${server.base}/health/ready`)).status).toBe(200);
  });

  test('Bearer and x-api-key both work; the key is checked before an upload is read', async () => {
    const a = await postJson(server, { query: MODEL }, bearer(keys.screen.key));
    expect(a.status).toBe(200);
    expect(a.body.data).toEqual({ model: { id: 'fashion-cnn' } });
    const b = await postJson(
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
    const denied = await postJson(
      server,
      { query: attack, variables: { x: { base64: trouser } } },
      bearer(keys.screen.key),
    );
    expect([denied.status, codeOf(denied)]).toEqual([403, 'FORBIDDEN']);
    expect(denied.body.errors![0].message).toMatch(/'screener' lacks the scope 'attack'/);
    const notAdmin = await postJson(server, { query: audit }, bearer(keys.screen.key));
    expect([notAdmin.status, codeOf(notAdmin)]).toEqual([403, 'FORBIDDEN']);
    const allowed = await postJson(
      server,
      { query: attack, variables: { x: { base64: trouser } } },
      bearer(keys.attack.key),
    );
    expect(allowed.body.errors).toBeUndefined();
    expect(typeof (allowed.body.data!.attack as { success: boolean }).success).toBe('boolean');
    // The principal reaches the resolvers: the audit log names the key that screened.
    const admin = await postJson(
      server,
      { query: '{ screenings(first: 50) { edges { node { keyId } } } }' },
      bearer(keys.admin.key),
    );
    expect(admin.body.errors).toBeUndefined();
    const keyIds = (admin.body.data!.screenings as { edges: Array<{ node: { keyId: string } }> }).edges.map(
      (e) => e.node.keyId,
    );
    expect(keyIds).toContain('screener');
    const adminScreens = await postJson(server, { query: MODEL }, bearer(keys.admin.key));
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
    const full = await postJson(
      server,
      { query: SCREEN, variables: { i: [{ base64: trouser }, { base64: trouser }, { base64: trouser }] } },
      key,
    );
    expect(full.body.errors).toBeUndefined();
    // At the door: the bucket is empty, nothing of the request is read.
    const door = await postJson(server, { query: MODEL }, key);
    expect([door.status, codeOf(door)]).toEqual([429, 'RATE_LIMITED']);
    const wait = door.body.errors![0].extensions!.retryAfterMs as number;
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(500);
    expect(Number(door.headers.get('retry-after'))).toBe(1);
    await new Promise((r) => setTimeout(r, wait));
    // The door's token is there again, but not the images': refused when the field reads them.
    const images = await postJson(
      server,
      { query: SCREEN, variables: { i: [{ base64: trouser }, { base64: trouser }] } },
      key,
    );
    expect([images.status, codeOf(images)]).toEqual([429, 'RATE_LIMITED']);
    expect(images.headers.get('retry-after')).toBeTruthy();
    await new Promise((r) => setTimeout(r, (images.body.errors![0].extensions!.retryAfterMs as number) + 600));
    const again = await postJson(server, { query: SCREEN, variables: { i: [{ base64: trouser }] } }, key);
    expect(again.body.errors).toBeUndefined();
    // Other keys have buckets of their own.
    expect((await postJson(server, { query: MODEL }, bearer(keys.screen.key))).status).toBe(200);
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
      const r = await postJson(server, body, key);
      // Only the limits' errors (the 30-deep document is too costly as well), never the schema's.
      const codes = r.body.errors!.map((e) => e.extensions!.code);
      expect({ code, status: r.status, codes }).toEqual({
        code,
        status: 400,
        codes: code === 'QUERY_TOO_DEEP' ? [code, 'QUERY_TOO_COSTLY'] : [code],
      });
      expect(r.body.errors![0].extensions!.limitValue).toEqual(expect.any(Number));
      const good = await postJson(server, { query: MODEL }, key);
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
    const answers = (await batch.json()) as Array<JsonReply['body']>;
    expect(answers.map((a) => a.errors?.[0]?.extensions?.code ?? 'ok').sort()).toEqual(['PAYLOAD_TOO_LARGE', 'ok']);
    // And within one operation, as before.
    const five = { query: SCREEN, variables: { i: Array.from({ length: 5 }, () => ({ base64: trouser })) } };
    const r = await postJson(server, five, key);
    expect([r.status, codeOf(r)]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
  });

  test('outside production the landing page is served, without a key', async () => {
    const page = await fetch(`${server.base}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    // Only a GET with no operation at all is the page: one with a query needs a key like any
    // other, whatever the encoding of the parameter's name (review finding 3).
    const query = `?%71uery=${encodeURIComponent(MODEL)}`;
    const html = { accept: 'text/html, application/json;q=0.9' };
    expect((await rawRequest(server, `/graphql${query}`, html)).status).toBe(401);
    expect((await rawRequest(server, `/graphql?%65xtensions=%7B%7D`, html)).status).toBe(401);
  });
  test('a batch is counted by its length, and each of its elements must be an operation (review finding 1)', async () => {
    const key = bearer(keys.screen.key);
    // Two million zeros and one operation: refused from the array's length, not answered one by one.
    const zeros = `[${'0,'.repeat(2_000_000)}${JSON.stringify({ query: MODEL })}]`;
    const started = performance.now();
    const res = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...key },
      body: zeros,
    });
    const many = { status: res.status, body: (await res.json()) as JsonReply['body'] };
    expect([many.status, many.body.errors?.[0]?.extensions?.code]).toEqual([400, 'TOO_MANY_OPERATIONS']);
    expect(many.body.errors![0].message).toMatch(/batches 2000001 operations; at most 8/);
    expect(performance.now() - started).toBeLessThan(5000);
    for (const [element, got] of [
      [0, 'a number'],
      [null, 'null'],
      ['{ model { id } }', 'a string'],
      [[{ query: MODEL }], 'an array'],
    ] as const) {
      const r = await postJson(server, [{ query: MODEL }, element], key);
      expect([r.status, codeOf(r), r.body.errors!.length]).toEqual([400, 'BAD_REQUEST', 1]);
      expect(r.body.errors![0].message).toBe(
        `operation 1 of the batch must be an object {"query", "variables", …}; got ${got}`,
      );
    }
    const good = await postJson(server, [{ query: MODEL }], key);
    expect(good.body).toEqual([{ data: { model: { id: 'fashion-cnn' } } }]);
  });

  test('variables holding more list entries than images allowed: 413 before graphql-js coerces them (review finding 2)', async () => {
    const key = bearer(keys.screen.key);
    // @skip: the field never runs, so only the gateway can refuse what coercion would copy.
    const skipped = 'mutation($i: [ImageInput!]!) { screen(images: $i) @skip(if: true) { index } }';
    const refusedAs = (r: JsonReply, where: string) => {
      expect([r.status, codeOf(r), r.body.errors!.length]).toEqual([413, 'PAYLOAD_TOO_LARGE', 1]);
      expect(r.body.errors![0].extensions).toMatchObject({ limit: 'maxImages', limitValue: 4 });
      expect(r.body.errors![0].message).toMatch(new RegExp(`^${where}: its variables hold more than 4 list entries`));
    };
    refusedAs(
      await postJson(server, { query: skipped, variables: { i: Array.from({ length: 5 }, () => ({})) } }, key),
      'the operation',
    );
    refusedAs(
      await postJson(server, { query: skipped, variables: { i: [{}, {}], j: [{}, {}, {}] } }, key),
      'the operation',
    );
    // Two million empty inputs (6 MB): refused from the list's length, at once.
    const started = performance.now();
    const huge = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...key },
      body: `{"query":${JSON.stringify(SCREEN)},"variables":{"i":[${'{},'.repeat(1_999_999)}{}]}}`,
    });
    refusedAs(
      { status: huge.status, headers: huge.headers, body: (await huge.json()) as JsonReply['body'] },
      'the operation',
    );
    expect(performance.now() - started).toBeLessThan(5000);
    // Each operation of a batch on its own (the resolvers count the batch's images together).
    const five = { query: skipped, variables: { i: Array.from({ length: 5 }, () => ({})) } };
    refusedAs(await postJson(server, [{ query: MODEL }, five], key), 'operation 1 of the batch');
    // A multipart request's `operations`, read before its files.
    const { body, contentType } = multipartBody(
      { query: skipped, variables: { i: Array.from({ length: 5 }, () => ({ file: null })) } },
      { 0: ['variables.i.0.file'] },
      [{ name: '0', filename: 'a.png', contentType: 'image/png', data: Buffer.from(trouser, 'base64') }],
    );
    const multipart = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': contentType, 'apollo-require-preflight': 'true', ...key },
      body,
    });
    refusedAs(
      { status: multipart.status, headers: multipart.headers, body: (await multipart.json()) as JsonReply['body'] },
      'the operation',
    );
    // A GET's variables too.
    const variables = encodeURIComponent(JSON.stringify({ i: [{}, {}, {}, {}, {}] }));
    const get = await rawRequest(server, `/graphql?query=${encodeURIComponent(MODEL)}&variables=${variables}`, {
      'apollo-require-preflight': 'true',
      ...key,
    });
    refusedAs(get, 'the operation');
    // As many images as allowed still run, by JSON and by multipart.
    const four = await postJson(
      server,
      { query: SCREEN, variables: { i: Array.from({ length: 4 }, () => ({ base64: trouser })) } },
      key,
    );
    expect(four.body.errors).toBeUndefined();
    expect(four.body.data!.screen).toHaveLength(4);
  });

  test('a URL that does not parse is BAD_REQUEST 400, not a 500 (review finding 11)', async () => {
    const r = await rawRequest(server, '/graphql//[', bearer(keys.screen.key));
    expect([r.status, codeOf(r)]).toEqual([400, 'BAD_REQUEST']);
    expect(JSON.stringify(r.body)).not.toMatch(/stacktrace|TypeError/);
  });

  test('a key whose bucket is smaller than the largest request is named in a start-up warning (review finding 11)', () => {
    const warnings = server.logs.filter((l) => l.includes('"level":40') && l.includes('rateLimit.burst'));
    expect(warnings).toHaveLength(1); // 'slow': a bucket of 4, requests of up to 4 images and the door's token
    expect(warnings[0]).toContain("API key 'slow': rateLimit.burst 4 is below ADVSIEVE_MAX_IMAGES + 1 = 5");
    expect(warnings[0]).toContain('1.250× its rate');
    expect(server.logs.some((l) => l.includes('ADVSIEVE_RATE_LIMIT_BURST 256 is below'))).toBe(false);
  });

  test('FORBIDDEN: the root fields are non-null, so a refused field leaves no data at all, HTTP 403 (review finding 10)', async () => {
    const r = await postJson(
      server,
      { query: '{ model { id } screenings(first: 1) { totalCount } }' },
      bearer(keys.screen.key),
    );
    expect(r.status).toBe(403);
    expect(r.body.data).toBeNull();
    expect(r.body.errors!.map((e) => e.extensions!.code)).toEqual(['FORBIDDEN']);
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
    const byBody = await postJson(server, { query: SCREEN, variables: { i: [{ base64: trouser }] } });
    expect(byBody.body.errors).toBeUndefined();
    const persisted = { persistedQuery: { version: 1, sha256Hash: documentHash(MODEL) } };
    const byHash = await postJson(server, { extensions: persisted });
    expect(byHash.body.data).toEqual({ model: { id: 'fashion-cnn' } });
    const get = await fetch(`${server.base}/graphql?extensions=${encodeURIComponent(JSON.stringify(persisted))}`, {
      headers: { 'apollo-require-preflight': 'true' },
    });
    expect(await get.json()).toEqual({ data: { model: { id: 'fashion-cnn' } } });
    const unlisted = await postJson(server, { query: '{ model { id sha256 } }' });
    expect([unlisted.status, codeOf(unlisted)]).toEqual([400, 'PERSISTED_QUERY_NOT_ALLOWED']);
    const reformatted = await postJson(server, { query: MODEL.replace(' ', '  ') });
    expect(codeOf(reformatted)).toBe('PERSISTED_QUERY_NOT_ALLOWED');
    const unknownHash = await postJson(server, {
      extensions: { persistedQuery: { version: 1, sha256Hash: 'f'.repeat(64) } },
    });
    expect([unknownHash.status, codeOf(unknownHash)]).toEqual([400, 'PERSISTED_QUERY_NOT_ALLOWED']);
    const inBatch = await postJson(server, [{ query: MODEL }, { query: '{ limits { maxImages } }' }]);
    expect(codeOf(inBatch)).toBe('PERSISTED_QUERY_NOT_ALLOWED');
  });

  test('production: introspection refused, no landing page, no field suggestions; no keys and the API stays open', async () => {
    const r = await postJson(server, { query: INTROSPECT });
    expect(r.status).toBe(400);
    expect(r.body.errors![0].message).toMatch(/introspection is not allowed/);
    const page = await fetch(`${server.base}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.headers.get('content-type') ?? '').not.toMatch(/text\/html/);
    const typo = await postJson(server, { query: '{ model { idd } }' });
    expect(codeOf(typo)).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(typo.body.errors![0].message).not.toMatch(/Did you mean/);
  });

  test('GET runs through the same checks whatever its encoding or Accept header (review finding 3)', async () => {
    const aliased = `{ ${Array.from({ length: 18 }, (_, i) => `m${i}: model { id }`).join(' ')} }`;
    const prefersHtml = { accept: 'text/html, application/json;q=0.9', 'apollo-require-preflight': 'true' };
    for (const name of ['%71uery', 'q%75ery', 'query']) {
      const r = await rawRequest(server, `/graphql?${name}=${encodeURIComponent(aliased)}`, prefersHtml);
      expect({ name, status: r.status, code: codeOf(r) }).toEqual({
        name,
        status: 400,
        code: 'PERSISTED_QUERY_NOT_ALLOWED',
      });
    }
    // A listed document under an encoded name runs: Apollo reads the parameters the gateway checked.
    const listedGet = await rawRequest(server, `/graphql?%71uery=${encodeURIComponent(MODEL)}`, {
      'apollo-require-preflight': 'true',
    });
    expect(listedGet.body).toEqual({ data: { model: { id: 'fashion-cnn' } } });
    // No landing page in production: a bare GET is an operation without a document, refused as one.
    const bare = await rawRequest(server, '/graphql', prefersHtml);
    expect([bare.status, codeOf(bare)]).toEqual([400, 'PERSISTED_QUERY_NOT_ALLOWED']);
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
