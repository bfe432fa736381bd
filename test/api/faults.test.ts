/**
 * Holding under faults and load, over HTTP against started servers: a worker killed mid-batch
 * (fault injection) — the batch is rerun and nothing fails, or, when the rerun dies too, each of
 * its images runs alone and only the one that kills workers fails with INFERENCE_FAILED; other
 * requests, those sharing its batch included, are answered throughout and the pool heals. Deadlines: a request whose images wait past ADVSIEVE_REQUEST_TIMEOUT_MS fails with
 * DEADLINE_EXCEEDED (504) and its images are dropped unrun; a body that trickles in is cut off.
 * Admission: beyond ADVSIEVE_MAX_CONCURRENT_REQUESTS, OVERLOADED (503, Retry-After) at once.
 */
import * as fs from 'fs';
import * as net from 'net';
import * as zlib from 'zlib';
import sharp from 'sharp';
import { faultLevels, FaultKind } from '../../src/engine/faultInjection';
import { errorCode, fixtureFiles, gql, GqlResponse, startServer, TestServer } from './helpers';

const CLASSIFY = `mutation($images: [ImageInput!]!) { classify(images: $images) { index prediction { label } error { code message } } }`;
const STATS =
  '{ engineStats { batches items expired retriedBatches replacedWorkers workerTensors workerTensorBytes } }';

interface Row {
  index: number;
  prediction: { label: string } | null;
  error: { code: string; message: string } | null;
}
interface Stats {
  batches: number;
  items: number;
  expired: number;
  retriedBatches: number;
  replacedWorkers: number;
  workerTensors: number;
  workerTensorBytes: number;
}

const good = fixtureFiles().map((f) => fs.readFileSync(f));
const b64 = (b: Buffer) => ({ base64: b.toString('base64') });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function codes(r: GqlResponse<{ classify: Row[] }>): string[] {
  if (!r.body.data) throw new Error(`HTTP ${r.status}, no data: ${JSON.stringify(r.body.errors)}`);
  return r.body.data.classify.map((x) => x.error?.code ?? 'ok');
}

/** A JSON POST written on a raw socket, left open: the test decides when the client hangs up. */
async function rawPost(port: number, variables: Record<string, unknown>): Promise<net.Socket> {
  const body = JSON.stringify({ query: CLASSIFY, variables });
  const socket = net.connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  socket.on('error', () => undefined);
  socket.write(
    `POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  return socket;
}

/** Sends `head` on a raw socket and returns what comes back before the server closes it (or 3 s pass). */
async function rawRequest(port: number, head: string): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  let received = '';
  socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
  socket.on('error', () => undefined);
  socket.write(head);
  await new Promise((r) => {
    socket.once('close', r);
    setTimeout(r, 3000);
  });
  socket.destroy();
  return received;
}

async function faultPng(kind: FaultKind): Promise<Buffer> {
  return sharp(Buffer.from(faultLevels(kind, 28 * 28)), { raw: { width: 28, height: 28, channels: 1 } })
    .png()
    .toBuffer();
}

async function stats(server: TestServer): Promise<Stats> {
  return (await gql<{ engineStats: Stats }>(server, STATS)).body.data!.engineStats;
}

async function metric(server: TestServer, name: string): Promise<number> {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  // Summed over its series: the per-model gauges have one per model.
  const lines = text.split('\n').filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return lines.length ? lines.reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0) : NaN;
}

async function waitReady(server: TestServer, workers: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const r = (await (await fetch(`${server.base}/health/ready`)).json()) as { readyWorkers: number };
    if (r.readyWorkers === workers) return;
    await sleep(50);
  }
  throw new Error('the pool did not heal');
}

describe('worker death', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({
      ADVSIEVE_FAULT_INJECTION: '1',
      ADVSIEVE_WORKERS: '2',
      ADVSIEVE_MAX_BATCH: '4',
      // Long enough for concurrent requests to share a batch (it leaves once it holds four).
      ADVSIEVE_MAX_DELAY_MS: '300',
      ADVSIEVE_AUDIT: '0',
    });
  }, 120_000);
  afterAll(async () => {
    // Still up and exiting cleanly after the crashes.
    expect((await server?.stop())?.code).toBe(0);
  });

  test('a worker killed mid-batch: the batch is rerun, every request is answered in full, a replacement starts', async () => {
    const before = await stats(server);
    const victim = gql<{ classify: Row[] }>(server, CLASSIFY, {
      images: [b64(await faultPng('crashOnce')), ...good.slice(0, 3).map(b64)],
    });
    const others = good.slice(3, 9).map((g) => gql<{ classify: Row[] }>(server, CLASSIFY, { images: [b64(g)] }));
    const [v, ...o] = await Promise.all([victim, ...others]);
    expect(v.status).toBe(200);
    expect(codes(v)).toEqual(['ok', 'ok', 'ok', 'ok']);
    for (const r of o) expect(codes(r)).toEqual(['ok']);
    await waitReady(server, 2);
    const after = await stats(server);
    expect(after.retriedBatches).toBe(before.retriedBatches + 1);
    expect(after.replacedWorkers).toBe(before.replacedWorkers + 1);
    expect(await metric(server, 'advsieve_worker_replacements')).toBe(after.replacedWorkers);
    expect(await metric(server, 'advsieve_workers_ready')).toBe(2);
  });

  test('a batch whose rerun dies too: its images run alone, only the one that kills workers fails, other requests sharing the batch are answered', async () => {
    const before = await stats(server);
    // One batch of four (ADVSIEVE_MAX_BATCH) from three requests: the killer and a good image, and two others.
    const doomed = gql<{ classify: Row[] }>(server, CLASSIFY, {
      images: [b64(await faultPng('crashAlways')), b64(good[0])],
    });
    const others = good.slice(8, 10).map((g) => gql<{ classify: Row[] }>(server, CLASSIFY, { images: [b64(g)] }));
    const [d, ...o] = await Promise.all([doomed, ...others]);
    expect(d.status).toBe(200);
    expect(codes(d)).toEqual(['INFERENCE_FAILED', 'ok']);
    expect(d.body.data!.classify[0].error!.message).toMatch(/inference worker died while running this batch/);
    for (const r of o) expect(codes(r)).toEqual(['ok']);
    await waitReady(server, 2);
    const after = await stats(server);
    expect(after.retriedBatches).toBe(before.retriedBatches + 1);
    // The batch's first run, its rerun, and the killer run alone: three deaths, no more.
    expect(after.replacedWorkers).toBe(before.replacedWorkers + 3);
    expect(after.batches - before.batches).toBe(1);
    // A good request right after is answered by the healed pool.
    expect(codes(await gql<{ classify: Row[] }>(server, CLASSIFY, { images: good.slice(0, 8).map(b64) }))).toEqual(
      Array(8).fill('ok'),
    );
  });

  test('worker tensors are reported in engineStats and /metrics, and stay put over many batches', async () => {
    const first = await stats(server);
    expect(first.workerTensors).toBeGreaterThan(0);
    expect(first.workerTensorBytes).toBeGreaterThanOrEqual(2 * 1_686_568); // the weights, in each worker
    for (let i = 0; i < 10; i++) await gql(server, CLASSIFY, { images: good.slice(0, 8).map(b64) });
    const later = await stats(server);
    expect(later.workerTensors).toBe(first.workerTensors);
    expect(await metric(server, 'advsieve_worker_tensors')).toBe(later.workerTensors);
    expect(await metric(server, 'advsieve_main_thread_tensors')).toBeGreaterThanOrEqual(0);
  });
});

describe('deadlines and admission', () => {
  let server: TestServer;
  // Long enough for a full batch on a loaded machine, short enough to wait for.
  const TIMEOUT_MS = 1500;
  beforeAll(async () => {
    server = await startServer({
      ADVSIEVE_REQUEST_TIMEOUT_MS: String(TIMEOUT_MS),
      ADVSIEVE_MAX_BATCH: '4',
      // A lone image waits far longer than the deadline for its batch to fill; four leave at once.
      ADVSIEVE_MAX_DELAY_MS: '20000',
      ADVSIEVE_MAX_CONCURRENT_REQUESTS: '3',
      ADVSIEVE_WORKERS: '1',
      ADVSIEVE_AUDIT: '0',
    });
    // The worker's first batch is its slowest (first use of each kernel): not within a 1.5 s deadline
    // on a loaded machine (CI saw it time out), and not what these tests are about.
    await gql(server, CLASSIFY, { images: good.slice(0, 4).map(b64) });
  }, 120_000);
  afterAll(async () => {
    expect((await server?.stop())?.code).toBe(0);
  });

  test('DEADLINE_EXCEEDED (504) at the deadline; the waiting image is dropped unrun; a full batch is answered', async () => {
    const before = await stats(server);
    const start = performance.now();
    const r = await gql(server, CLASSIFY, { images: [b64(good[0])] });
    const ms = performance.now() - start;
    expect(r.status).toBe(504);
    expect(errorCode(r)).toBe('DEADLINE_EXCEEDED');
    expect(r.body.errors![0].message).toMatch(/deadline of 1500 ms passed while its images waited for inference/);
    expect(r.body.data?.classify ?? null).toBeNull();
    expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(ms).toBeLessThan(TIMEOUT_MS + 1500); // at the deadline, not when the batch would have left
    const full = await gql<{ classify: Row[] }>(server, CLASSIFY, { images: good.slice(1, 5).map(b64) });
    expect(codes(full)).toEqual(['ok', 'ok', 'ok', 'ok']);
    // The next batch to leave found the lone image expired: dropped, not computed.
    const after = await stats(server);
    expect(after.expired).toBe(before.expired + 1);
    expect(after.items).toBe(before.items + 4);
  });

  test('OVERLOADED (503, Retry-After) beyond the requests in flight, before the body is read; admitted again after', async () => {
    // Three lone images: each request waits for its deadline, holding its place.
    const held = good.slice(5, 8).map((g) => gql(server, CLASSIFY, { images: [b64(g)] }));
    await sleep(100);
    const refused = await gql(server, CLASSIFY, { images: [b64(good[9])] });
    expect(refused.status).toBe(503);
    expect(errorCode(refused)).toBe('OVERLOADED');
    expect(refused.body.errors![0].extensions).toMatchObject({ limit: 'maxConcurrentRequests', limitValue: 3 });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Health and metrics are outside admission; readiness says the instance is saturated (503).
    expect((await fetch(`${server.base}/health/live`)).status).toBe(200);
    const ready = await fetch(`${server.base}/health/ready`);
    expect([ready.status, ((await ready.json()) as { status: string }).status]).toEqual([503, 'saturated']);
    expect(await metric(server, 'advsieve_requests_in_flight')).toBe(3);
    for (const r of await Promise.all(held)) expect(errorCode(r)).toBe('DEADLINE_EXCEEDED');
    const full = await gql<{ classify: Row[] }>(server, CLASSIFY, { images: good.slice(10, 14).map(b64) });
    expect(codes(full)).toEqual(['ok', 'ok', 'ok', 'ok']);
  });

  test('a client that hangs up does not free its place: the request holds it until its work has settled', async () => {
    // Three lone images: each request's work waits for its deadline, whatever its client does.
    const start = performance.now();
    const sockets = await Promise.all(good.slice(5, 8).map((g) => rawPost(server.port, { images: [b64(g)] })));
    await sleep(300);
    for (const s of sockets) s.destroy(); // the clients give up; their images are still queued
    await sleep(200);
    expect(await metric(server, 'advsieve_requests_in_flight')).toBe(3);
    const refused = await gql(server, CLASSIFY, { images: [b64(good[9])] });
    expect(refused.status).toBe(503);
    expect(refused.body.errors![0].extensions).toMatchObject({ code: 'OVERLOADED', limit: 'maxConcurrentRequests' });
    // Their work ends at the deadline (the images are dropped unrun); then the places are free.
    for (let i = 0; i < 100 && (await metric(server, 'advsieve_requests_in_flight')) > 0; i++) await sleep(50);
    expect(await metric(server, 'advsieve_requests_in_flight')).toBe(0);
    expect(performance.now() - start).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    const full = await gql<{ classify: Row[] }>(server, CLASSIFY, { images: good.slice(10, 14).map(b64) });
    expect(codes(full)).toEqual(['ok', 'ok', 'ok', 'ok']);
  });

  test('a body that trickles in (slow loris) is cut off once the request timeout passes', async () => {
    const socket = net.connect(server.port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    const body = JSON.stringify({ query: CLASSIFY, variables: { images: [b64(good[0])] } });
    socket.write(
      `POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    let received = '';
    socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
    // The server closes the connection after its 408; a byte dripped in that instant meets a reset
    // (ECONNRESET), which is how the cut-off may look from here: not a failure by itself.
    socket.on('error', () => undefined);
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now())));
    const start = performance.now();
    let sent = 0;
    const drip = setInterval(() => {
      if (sent < body.length && !socket.destroyed) socket.write(body[sent++]);
    }, 50);
    // Meanwhile the server answers others at once.
    const other = await gql<{ classify: Row[] }>(server, CLASSIFY, { images: good.slice(14, 18).map(b64) });
    expect(codes(other)).toEqual(['ok', 'ok', 'ok', 'ok']);
    const end = await closed;
    clearInterval(drip);
    expect(sent).toBeLessThan(body.length); // cut off long before the body was complete
    expect(end - start).toBeLessThan(TIMEOUT_MS + 3000);
    expect(received).toMatch(/^HTTP\/1\.1 408/);
  });
});

describe('the byte budget of bodies in flight (ADVSIEVE_MAX_INFLIGHT_BYTES)', () => {
  let server: TestServer;
  const BUDGET = 6000;
  beforeAll(async () => {
    server = await startServer({
      ADVSIEVE_MAX_INFLIGHT_BYTES: String(BUDGET),
      ADVSIEVE_MAX_BODY_BYTES: '16384',
      ADVSIEVE_AUDIT: '0',
    });
  }, 120_000);
  afterAll(async () => {
    expect((await server?.stop())?.code).toBe(0);
  });

  test('a body that could never fit is 413; one that does not fit now is OVERLOADED; both admitted once bytes free up', async () => {
    const body = (n: number) => JSON.stringify({ query: CLASSIFY, variables: { images: good.slice(0, n).map(b64) } });
    expect(body(1).length).toBeLessThan(BUDGET - 4000);
    // A request that declares 4000 bytes and sends a few: it holds 4000 of the 6000 while it trickles.
    const socket = net.connect(server.port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    socket.write(
      'POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{',
    );
    await sleep(200);
    const fits = await gql<{ classify: Row[] }>(server, CLASSIFY, { images: good.slice(0, 1).map(b64) });
    expect(codes(fits)).toEqual(['ok']);
    const big = body(2);
    expect(big.length).toBeGreaterThan(BUDGET - 4000);
    expect(big.length).toBeLessThan(BUDGET);
    const refused = await gql(server, CLASSIFY, { images: good.slice(0, 2).map(b64) });
    expect(refused.status).toBe(503);
    expect(errorCode(refused)).toBe('OVERLOADED');
    expect(refused.body.errors![0].extensions).toMatchObject({ limit: 'maxInflightBytes', limitValue: BUDGET });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const never = await gql(server, CLASSIFY, { images: good.slice(0, 5).map(b64) });
    expect(
      JSON.stringify({ query: CLASSIFY, variables: { images: good.slice(0, 5).map(b64) } }).length,
    ).toBeGreaterThan(BUDGET);
    expect(never.status).toBe(413);
    expect(errorCode(never)).toBe('PAYLOAD_TOO_LARGE');
    expect(never.body.errors![0].extensions).toMatchObject({ limit: 'maxInflightBytes' });
    // The trickling request goes away: its 4000 bytes are free again.
    socket.destroy();
    await sleep(200);
    const admitted = await gql<{ classify: Row[] }>(server, CLASSIFY, { images: good.slice(0, 2).map(b64) });
    expect(codes(admitted)).toEqual(['ok', 'ok']);
  });

  test('a request with neither Content-Length nor Transfer-Encoding has no body and is charged nothing', async () => {
    const get = await fetch(`${server.base}/graphql?query=${encodeURIComponent('{ engineStats { batches } }')}`, {
      headers: { 'apollo-require-preflight': 'true', accept: 'application/json' },
    });
    expect(get.status).toBe(200);
    expect(((await get.json()) as { data: { engineStats: { batches: number } } }).data.engineStats.batches).toEqual(
      expect.any(Number),
    );
    // A chunked body may be as large as ADVSIEVE_MAX_BODY_BYTES (16384), which could never fit.
    const chunked = await rawRequest(
      server.port,
      'POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
    );
    expect(chunked).toMatch(/^HTTP\/1\.1 413/);
    expect(chunked).toMatch(/maxInflightBytes/);
  });

  test('a compressed body is refused (415 UNSUPPORTED_MEDIA_TYPE) before it is read: its bytes say nothing of its size', async () => {
    // 700 bytes of gzip that inflate past the budget (and under ADVSIEVE_MAX_BODY_BYTES).
    const json = JSON.stringify({ query: '{ engineStats { batches } }', pad: ' '.repeat(12_000) });
    for (const [encoding, body] of [
      ['gzip', zlib.gzipSync(json)],
      ['deflate', zlib.deflateSync(json)],
      ['br', zlib.brotliCompressSync(json)],
    ] as const) {
      expect(body.length).toBeLessThan(1000);
      const r = await fetch(`${server.base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': encoding },
        body,
      });
      expect(r.status).toBe(415);
      expect(r.headers.get('connection')).toBe('close');
      const errors = ((await r.json()) as GqlResponse['body']).errors!;
      expect(errors[0].extensions).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE', contentEncoding: encoding });
    }
    // identity is no encoding at all.
    const plain = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'identity' },
      body: JSON.stringify({ query: '{ engineStats { batches } }' }),
    });
    expect(plain.status).toBe(200);
  });

  test('every request lets its place go exactly once, whatever answered it', async () => {
    // Apollo's own 400, a broken JSON body (the parser's 400), and a GET answered in full.
    expect((await gql(server, '{ engineStats { ')).status).toBe(400);
    const broken = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"query": ',
    });
    expect(broken.status).toBe(400);
    await sleep(100);
    // After every refusal and answer above: nothing in flight, and not less than nothing.
    expect(await metric(server, 'advsieve_requests_in_flight')).toBe(0);
    // The whole budget is free: a body just under it is admitted.
    const whole = JSON.stringify({ query: '{ engineStats { batches } }', pad: ' '.repeat(BUDGET - 100) });
    expect(whole.length).toBeLessThanOrEqual(BUDGET);
    const r = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: whole,
    });
    expect(r.status).toBe(200);
  });
});
