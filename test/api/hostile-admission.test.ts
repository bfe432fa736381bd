/**
 * Nobody holds what everybody needs (issue 11): admission under hostile clients, against started
 * servers over raw sockets.
 * - Pipelining: requests pipelined behind a slow one, then a close, left their places taken for
 *   ever (queued responses get neither 'finish' nor 'close'); now a connection has at most one
 *   admitted request, at most 16 waiting (beyond, it is closed), every place is let go when its
 *   connection closes, and none outlives its deadline by more than the grace.
 * - Fair shares: one request declaring the whole byte budget and trickling blocked every POST;
 *   now a key's requests and bytes are a share of the whole, a request may not be charged more
 *   than the share, and a reservation not being filled is cut off (408).
 * - Readiness: 503 `saturated` while nothing can be admitted, 200 again after.
 * - JSON bodies whose shape costs the main thread (a million unused keys, deep nesting, millions
 *   of numbers, undeclared variables) are refused before they are parsed or walked, and
 *   /health/live stays fast while they arrive.
 * Figures for the report are printed with `console.log` (`npx jest … --verbose=false`).
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import { createApiKey } from '../../src/gateway/apiKeys';
import { fixtureFiles, GqlResponse, startServer, TestServer } from './helpers';

const CLASSIFY = `mutation($images: [ImageInput!]!) { classify(images: $images) { index prediction { label } error { code } } }`;
const MODEL = '{ model { id } }';
const MiB = 1024 * 1024;

const good = fixtureFiles().map((f) => fs.readFileSync(f));
const trouser = fs.readFileSync(fixtureFiles().find((f) => f.includes('trouser'))!);
const b64 = (b: Buffer) => ({ base64: b.toString('base64') });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** For races: resolves with NaN after `ms`, without keeping the process alive. */
const timeout = (ms: number) => new Promise<number>((r) => setTimeout(() => r(NaN), ms).unref());

/** A raw socket, its errors swallowed (the server closing it is what some tests wait for). */
interface RawClient {
  readonly socket: net.Socket;
  /** What the server sent so far. */
  received(): string;
  /** When the connection closed (performance.now()). */
  readonly gone: Promise<number>;
}

async function connect(server: TestServer): Promise<RawClient> {
  const socket = net.connect(server.port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  let received = '';
  socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
  socket.on('error', () => undefined);
  const gone = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now())));
  return { socket, received: () => received, gone };
}

function post(body: string, headers: Record<string, string> = {}): string {
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return `POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

function getRequest(query: string, headers: Record<string, string> = {}): string {
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return `GET /graphql?query=${encodeURIComponent(query)} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nApollo-Require-Preflight: true\r\n${extra}\r\n`;
}

async function gqlAs<T = Record<string, unknown>>(
  server: TestServer,
  body: string | Buffer | object,
  headers: Record<string, string> = {},
): Promise<GqlResponse<T> & { ms: number }> {
  const start = performance.now();
  const res = await fetch(`${server.base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
  const parsed = (await res.json()) as GqlResponse<T>['body'];
  return { status: res.status, headers: res.headers, body: parsed, ms: performance.now() - start };
}

/**
 * A JSON body's first `sent` bytes with its full Content-Length, on a raw socket: what the server
 * answers (its status line and body) before it closes or 5 s pass.
 */
async function partialPost(server: TestServer, body: Buffer, sent: number, headers: Record<string, string>) {
  const client = await connect(server);
  const start = performance.now();
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  client.socket.write(
    `POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${extra}Content-Length: ${body.length}\r\n\r\n`,
  );
  client.socket.write(body.subarray(0, sent));
  await Promise.race([client.gone, timeout(5000)]);
  const ms = performance.now() - start;
  client.socket.destroy();
  const text = client.received();
  const json = text.slice(text.indexOf('\r\n\r\n') + 4);
  return {
    status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1]),
    body: (json ? JSON.parse(json) : {}) as GqlResponse['body'],
    closed: /connection: close/i.test(text),
    ms,
  };
}

async function metric(server: TestServer, name: string, headers: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${server.base}/metrics`, { headers })).text();
  // Summed over its series: the per-model gauges have one per model.
  const lines = text.split('\n').filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return lines.length ? lines.reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0) : NaN;
}

/** Polls `read` until it gives `want` or `ms` pass; the last value read. */
async function waitFor(read: () => Promise<number>, want: number, ms: number): Promise<number> {
  const end = performance.now() + ms;
  let v = await read();
  while (v !== want && performance.now() < end) {
    await sleep(100);
    v = await read();
  }
  return v;
}

/**
 * The attack from a process of its own (this one would be the bottleneck): `concurrency` loops
 * sending a body of a million unused keys with `key`, and /health/live probed every 20 ms, for
 * `seconds`. Its statuses, and the probes' latencies in ms.
 */
function attackAndProbe(
  port: number,
  key: string,
  concurrency: number,
  seconds: number,
): Promise<{ statuses: Record<string, number>; live: number[] }> {
  const script = `
    const http = require('http');
    const query = ${JSON.stringify(CLASSIFY)};
    const variables = { images: [] };
    for (let i = 0; i < 1000000; i++) variables['k' + i] = 1;
    const body = Buffer.from(JSON.stringify({ query, variables }));
    const agent = new http.Agent({ keepAlive: true });
    const until = performance.now() + ${seconds * 1000};
    const statuses = {};
    const live = [];
    const post = () => new Promise((resolve) => {
      const req = http.request({ port: ${port}, host: '127.0.0.1', path: '/graphql', method: 'POST', agent, headers: {
        'content-type': 'application/json', 'content-length': body.length, authorization: 'Bearer ${key}' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(String(res.statusCode)));
      });
      req.on('error', (e) => resolve(e.code));
      req.end(body);
    });
    const probe = () => new Promise((resolve) => {
      const t = performance.now();
      http.get({ port: ${port}, host: '127.0.0.1', path: '/health/live', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(performance.now() - t));
      }).on('error', () => resolve(NaN));
    });
    (async () => {
      const attackers = Array.from({ length: ${concurrency} }, async () => {
        while (performance.now() < until) { const s = await post(); statuses[s] = (statuses[s] || 0) + 1; }
      });
      const prober = (async () => {
        while (performance.now() < until) { live.push(await probe()); await new Promise((r) => setTimeout(r, 20)); }
      })();
      await Promise.all([...attackers, prober]);
      process.stdout.write(JSON.stringify({ statuses, live }));
      agent.destroy();
    })();`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', script], { maxBuffer: 1 << 24 }, (err, stdout) =>
      err ? reject(err) : resolve(JSON.parse(stdout) as { statuses: Record<string, number>; live: number[] }),
    );
  });
}

function rssMB(server: TestServer): number {
  const status = fs.readFileSync(`/proc/${server.proc.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

const codeOf = (r: { body: GqlResponse<unknown>['body'] }) => r.body.errors?.[0]?.extensions?.code;

/**
 * After building a huge body, which blocks this process for seconds: lets fetch's pool notice the
 * keep-alive connections the server closed meanwhile (ADVSIEVE_KEEP_ALIVE_TIMEOUT_MS; it was 5 s), rather than
 * send on one of them.
 */
const settle = () => sleep(1500);

describe('pipelining: places are let go however a request ends', () => {
  let server: TestServer;
  const TIMEOUT_MS = 3000;
  const inFlight = () => metric(server, 'advsieve_requests_in_flight');
  beforeAll(async () => {
    server = await startServer({
      ADVSIEVE_REQUEST_TIMEOUT_MS: String(TIMEOUT_MS),
      // A lone image waits for a batch that never fills: the request is slow until its deadline.
      ADVSIEVE_MAX_BATCH: '64',
      ADVSIEVE_MAX_DELAY_MS: '20000',
      ADVSIEVE_MAX_CONCURRENT_REQUESTS: '8',
      ADVSIEVE_WORKERS: '1',
      ADVSIEVE_AUDIT: '0',
    });
  }, 120_000);
  afterAll(async () => {
    expect((await server?.stop())?.code).toBe(0);
  });

  test('POSTs pipelined behind a slow request, then a close: every place is let go, good requests are answered', async () => {
    const client = await connect(server);
    let pipeline = post(JSON.stringify({ query: CLASSIFY, variables: { images: [b64(good[0])] } }));
    for (let i = 0; i < 12; i++) pipeline += post(JSON.stringify({ query: MODEL }));
    client.socket.write(pipeline);
    await sleep(500);
    // One admitted request per connection: the pipelined ones wait, holding nothing.
    expect(await inFlight()).toBe(1);
    client.socket.destroy();
    // The slow one's work ends at its deadline; then nothing is held (before: 8 held for ever).
    const left = await waitFor(inFlight, 0, TIMEOUT_MS + 3000);
    console.log(`pipelined POSTs then close: in flight afterwards ${left}`);
    expect(left).toBe(0);
    const ok = await gqlAs<{ model: { id: string } }>(server, { query: MODEL });
    expect([ok.status, ok.body.data?.model.id]).toEqual([200, 'fashion-cnn']);
    expect((await fetch(`${server.base}/health/ready`)).status).toBe(200);
  });

  test('more than 16 requests pipelined on one connection: the connection is closed at once', async () => {
    const client = await connect(server);
    const start = performance.now();
    let pipeline = post(JSON.stringify({ query: CLASSIFY, variables: { images: [b64(good[1])] } }));
    for (let i = 0; i < 300; i++) pipeline += post(JSON.stringify({ query: MODEL }));
    client.socket.write(pipeline);
    const closedAt = await Promise.race([client.gone, timeout(TIMEOUT_MS + 2000)]);
    console.log(`300 pipelined: connection closed after ${(closedAt - start).toFixed(0)} ms`);
    // Closed long before the slow request's answer (at its deadline) could have been sent.
    expect(closedAt - start).toBeLessThan(TIMEOUT_MS - 1000);
    expect(client.received()).toBe('');
    expect(await waitFor(inFlight, 0, TIMEOUT_MS + 3000)).toBe(0);
    const ok = await gqlAs<{ model: { id: string } }>(server, { query: MODEL });
    expect(ok.status).toBe(200);
  });

  test('large GETs whose answers are never read hold one place, and only until the deadline and the grace', async () => {
    // Sixteen aliases of the schema's types: a large answer each, which the client never reads.
    const big = `{ ${Array.from({ length: 16 }, (_, i) => `a${i}: __schema { types { name description fields { name description args { name description } } } }`).join(' ')} }`;
    const probe = await fetch(`${server.base}/graphql?query=${encodeURIComponent(big)}`, {
      headers: { accept: 'application/json', 'apollo-require-preflight': 'true' },
    });
    expect(probe.status).toBe(200);
    const size = (await probe.arrayBuffer()).byteLength;
    expect(size).toBeGreaterThan(200_000);
    const client = await connect(server);
    client.socket.pause(); // never read
    const start = performance.now();
    client.socket.write(getRequest(big).repeat(15));
    await sleep(1000);
    // Another client is answered meanwhile (before: every place was held by an unread answer).
    const others = await Promise.all(
      Array.from({ length: 6 }, () => gqlAs<{ model: { id: string } }>(server, { query: MODEL })),
    );
    console.log(
      `unread large GETs (${size} bytes each): other clients' statuses ${others.map((o) => o.status).join(',')}, max ${Math.max(...others.map((o) => o.ms)).toFixed(0)} ms`,
    );
    for (const o of others) expect(o.status).toBe(200);
    expect(await inFlight()).toBe(1);
    // The client neither reads nor closes: at the deadline plus the grace the place is let go and
    // the connection closed (seen once the client reads what was buffered for it).
    const left = await waitFor(inFlight, 0, TIMEOUT_MS + 5000 + 2000);
    const heldMs = performance.now() - start;
    client.socket.resume();
    const closedAt = await Promise.race([client.gone, timeout(5000)]);
    const answers = client.received().split('HTTP/1.1 200').length - 1;
    console.log(
      `unread answers: place held ${heldMs.toFixed(0)} ms, in flight then ${left}; connection closed, ${answers} of 15 answers sent`,
    );
    expect(left).toBe(0);
    expect(heldMs).toBeGreaterThan(TIMEOUT_MS);
    expect(closedAt).not.toBeNaN();
    expect(answers).toBeLessThan(15);
  }, 30_000);
});

describe('fair shares, readiness and JSON shapes, with API keys', () => {
  let server: TestServer;
  const a = createApiKey('alpha', ['screen', 'oracle', 'admin']);
  const b = createApiKey('beta', ['screen', 'oracle']);
  const keyA = { authorization: `Bearer ${a.key}` };
  const keyB = { authorization: `Bearer ${b.key}` };
  beforeAll(async () => {
    server = await startServer({
      ADVSIEVE_API_KEYS: JSON.stringify([a.entry, b.entry]),
      // The byte budget is the default, 512 MiB: a key's share is 64 MiB.
      ADVSIEVE_MAX_CONCURRENT_REQUESTS: '8',
      ADVSIEVE_MAX_CONCURRENT_REQUESTS_PER_CLIENT: '4',
      ADVSIEVE_AUDIT: '0',
    });
    // The first inference of a fresh server is slow: not a figure of what is measured below.
    await gqlAs(server, { query: CLASSIFY, variables: { images: [b64(trouser)] } }, keyB);
  }, 120_000);
  afterAll(async () => {
    expect((await server?.stop())?.code).toBe(0);
  });

  test('a multipart request declaring 512 MiB is refused at once; one declaring its key’s whole share and trickling blocks no other key, and is cut off', async () => {
    const rssBefore = rssMB(server);
    const multipartHead = (length: number) =>
      `POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${a.key}\r\nApollo-Require-Preflight: true\r\n` +
      `Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: ${length}\r\n\r\n--xyz\r\n`;
    // The request: the whole budget, declared by one key.
    const whole = await connect(server);
    whole.socket.write(multipartHead(512 * MiB));
    await Promise.race([whole.gone, timeout(3000)]);
    expect(whole.received()).toMatch(/^HTTP\/1\.1 413/);
    expect(whole.received()).toContain('"limit":"maxInflightBytesPerClient"');
    whole.socket.destroy();
    // Its share, 64 MiB, declared and trickled: admitted, it holds 64 of the 512 MiB.
    const share = await connect(server);
    const start = performance.now();
    share.socket.write(multipartHead(64 * MiB));
    const drip = setInterval(() => share.socket.write('a'), 100);
    try {
      await sleep(300);
      // Key A's own next body does not fit in its share; B's does.
      const moreA = await gqlAs(server, { query: MODEL, pad: 'x'.repeat(1000) }, keyA);
      expect([moreA.status, codeOf(moreA)]).toEqual([503, 'OVERLOADED']);
      expect(moreA.body.errors![0].extensions).toMatchObject({ limit: 'maxInflightBytesPerClient' });
      const moreB = await gqlAs(server, { query: MODEL, pad: 'x'.repeat(1000) }, keyB);
      expect(moreB.status).toBe(200);
      // Key B screens as usual meanwhile.
      const screened = await gqlAs<{ classify: Array<{ prediction: { label: string } }> }>(
        server,
        { query: CLASSIFY, variables: { images: [b64(trouser)] } },
        keyB,
      );
      console.log(
        `key A trickles 64 MiB: key A's next request ${moreA.status} in ${moreA.ms.toFixed(0)} ms; key B's screen ${screened.status} in ${screened.ms.toFixed(0)} ms`,
      );
      expect(screened.status).toBe(200);
      expect(screened.body.data!.classify[0].prediction.label).toBe('Trouser');
      // A reservation not being filled is cut off (408) after the grace, not at the 30 s deadline.
      const closedAt = await Promise.race([share.gone, timeout(10_000)]);
      console.log(
        `64 MiB declared, trickled: cut off after ${(closedAt - start).toFixed(0)} ms with ${share.received().split('\r\n')[0]}; RSS ${rssBefore.toFixed(0)} → ${rssMB(server).toFixed(0)} MB`,
      );
      expect(share.received()).toMatch(/^HTTP\/1\.1 408/);
      expect(closedAt - start).toBeLessThan(6000);
    } finally {
      clearInterval(drip);
      share.socket.destroy();
    }
    const again = await gqlAs(server, { query: MODEL }, keyA);
    expect(again.status).toBe(200);
  }, 30_000);

  test('readiness: 503 saturated while no request can be admitted, 200 again once places are free', async () => {
    const holders: RawClient[] = [];
    try {
      // Four bodies per key (each key's share of places), declared and left unsent: all eight places.
      for (const key of [a.key, b.key]) {
        for (let i = 0; i < 4; i++) {
          const s = await connect(server);
          s.socket.write(
            `POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n{`,
          );
          holders.push(s);
        }
      }
      await sleep(300);
      const ready = await fetch(`${server.base}/health/ready`, { headers: keyA });
      const body = (await ready.json()) as { status: string; requestsInFlight: number };
      console.log(`saturated: /health/ready ${ready.status} ${JSON.stringify(body)}`);
      expect(ready.status).toBe(503);
      expect(body).toMatchObject({ status: 'saturated', requestsInFlight: 8 });
      expect((await fetch(`${server.base}/health/live`)).status).toBe(200);
    } finally {
      for (const s of holders) s.socket.destroy();
    }
    const after = await waitFor(async () => (await fetch(`${server.base}/health/ready`)).status, 200, 3000);
    expect(after).toBe(200);
  });

  test('JSON shapes that cost the main thread are refused before parsing, with their codes', async () => {
    const unused: Record<string, number> = {};
    for (let i = 0; i < 1_000_000; i++) unused[`k${i}`] = 1;
    const million = JSON.stringify({ query: CLASSIFY, variables: { images: [b64(trouser)], ...unused } });
    expect(million.length).toBeGreaterThan(10 * MiB);
    const cases: Array<[string, string, number, string, Record<string, unknown>]> = [
      ['a million unused keys', million, 413, 'PAYLOAD_TOO_LARGE', { limit: 'maxJsonKeys' }],
      [
        'lists a million deep',
        `{"query":${JSON.stringify(CLASSIFY)},"variables":{"images":[${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}]}}`,
        400,
        'BAD_USER_INPUT',
        { limit: 'maxJsonDepth' },
      ],
      [
        'three million numbers',
        JSON.stringify({ query: CLASSIFY, variables: { images: Array.from({ length: 3_000_000 }, () => 7) } }),
        413,
        'PAYLOAD_TOO_LARGE',
        { limit: 'maxImages' },
      ],
      [
        'a 12 MB string in an undeclared variable',
        JSON.stringify({ query: CLASSIFY, variables: { images: [b64(trouser)], blob: 'x'.repeat(12 * MiB) } }),
        400,
        'BAD_USER_INPUT',
        { undeclaredVariables: 1 },
      ],
      [
        'a few undeclared variables',
        JSON.stringify({ query: CLASSIFY, variables: { images: [b64(trouser)], x: 1, y: 2 } }),
        400,
        'BAD_USER_INPUT',
        { undeclaredVariables: 2 },
      ],
    ];
    await settle();
    for (const [what, text, status, code, extensions] of cases) {
      const body = Buffer.from(text);
      // The hostile shapes close the connection, so a client still sending could miss the answer:
      // these send their first 512 KiB only, and the server answers before the rest would come.
      const hostile = ['maxJsonKeys', 'maxJsonDepth'].includes(String(extensions.limit));
      const r = hostile ? await partialPost(server, body, 512 * 1024, keyA) : await gqlAs(server, body, keyA);
      console.log(
        `${what} (${(body.length / MiB).toFixed(1)} MiB): ${r.status} ${String(codeOf(r))} in ${r.ms.toFixed(0)} ms`,
      );
      expect([what, r.status, codeOf(r)]).toEqual([what, status, code]);
      expect(r.body.errors![0].extensions).toMatchObject(extensions);
      if (hostile) expect((r as { closed: boolean }).closed).toBe(true);
    }
    // A full request of the same operation is answered.
    const ok = await gqlAs<{ classify: Array<{ prediction: { label: string } }> }>(
      server,
      { query: CLASSIFY, variables: { images: [b64(trouser)] } },
      keyA,
    );
    expect(ok.body.data!.classify[0].prediction.label).toBe('Trouser');
  }, 60_000);

  test('/health/live stays fast while one key sends bodies of a million unused keys', async () => {
    const SECONDS = 8;
    const rssBefore = rssMB(server);
    let rssMax = rssBefore;
    // Three at a time, within key A's share and rate limit.
    const attack = attackAndProbe(server.port, a.key, 3, SECONDS);
    await sleep(1500); // the attacker builds its body first
    const goodMs: number[] = [];
    const goodStatuses = new Set<number>();
    const until = performance.now() + (SECONDS - 1) * 1000;
    while (performance.now() < until) {
      const g = await gqlAs(server, { query: CLASSIFY, variables: { images: [b64(trouser)] } }, keyB);
      goodMs.push(g.ms);
      goodStatuses.add(g.status);
      rssMax = Math.max(rssMax, rssMB(server));
      await sleep(200);
    }
    const { statuses, live } = await attack;
    const at = (xs: number[], q: number) => [...xs].sort((x, y) => x - y)[Math.floor(q * (xs.length - 1))];
    const p99 = at(live, 0.99);
    console.log(
      `bodies of a million keys, 3 at a time: ${JSON.stringify(statuses)}; /health/live p50 ${at(live, 0.5).toFixed(1)} ms, ` +
        `p99 ${p99.toFixed(1)} ms, max ${at(live, 1).toFixed(1)} ms over ${live.length} probes; ` +
        `key B's screens ${[...goodStatuses].join(',')}, p50 ${at(goodMs, 0.5).toFixed(0)} ms, max ${at(goodMs, 1).toFixed(0)} ms; RSS ${rssBefore.toFixed(0)} → max ${rssMax.toFixed(0)} MB`,
    );
    // Refused after its first ~100 KB; the connection is then closed, so a client still writing
    // its 12 MB may see the reset rather than the 413; past the key's rate, 429.
    expect(statuses['413']).toBeGreaterThan(0);
    for (const s of Object.keys(statuses)) expect(['413', '429', 'ECONNRESET', 'EPIPE']).toContain(s);
    expect([...goodStatuses]).toEqual([200]);
    // What this pins is the thread held ~2 s a body (before); the 50 ms goal is bench:hostile's figure.
    // A clean-clone CI run alongside other work measured 491 ms once.
    expect(p99).toBeLessThan(1000);
  }, 60_000);
});
