/**
 * The connection limits (src/server/connectionGuard.ts) on a bare HTTP server, with clients on
 * several loopback addresses (127.0.0.2, 127.0.0.3, …: all of 127/8 is this machine on Linux).
 */
import * as http from 'http';
import * as net from 'net';
import type { AddressInfo } from 'net';
import * as fs from 'fs';
import { waitFor } from '../helpers/waitFor';
import { fixtureFiles, startServer } from './helpers';
import {
  ConnectionGuard,
  PRESSURE_HEADERS_MS,
  PRESSURE_KEEP_ALIVE_MS,
  SocketsByAddress,
} from '../../src/server/connectionGuard';

interface Served {
  server: http.Server;
  guard: ConnectionGuard;
  port: number;
  /** Requests the handler holds unanswered until `release()`. */
  release(): void;
  holding: number;
}

const servers: http.Server[] = [];
const sockets: net.Socket[] = [];

async function serve(maxConnections: number, maxPerAddress: number, hold = false): Promise<Served> {
  let held: Array<() => void> = [];
  const out = {} as Served;
  const server = http.createServer({ headersTimeout: 30_000, requestTimeout: 30_000 }, (_req, res) => {
    if (!hold) return void res.end('ok');
    held.push(() => res.end('ok'));
    out.holding = held.length;
  });
  server.keepAliveTimeout = 65_000;
  const guard = new ConnectionGuard(server, { maxConnections, maxPerAddress });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return Object.assign(out, {
    server,
    guard,
    port: (server.address() as AddressInfo).port,
    holding: 0,
    release: () => {
      for (const f of held) f();
      held = [];
    },
  });
}

/** A connection from `from` that sends nothing (or `data`); resolves once connected. */
function connect(port: number, from: string, data?: string): Promise<net.Socket & { gone: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress: from }, () => {
      if (data) s.write(data);
      resolve(Object.assign(s, { gone }));
    });
    const gone = new Promise<void>((r) => s.once('close', () => r()));
    s.on('error', () => undefined);
    s.once('error', reject);
    sockets.push(s);
  });
}

/** One GET / from `from`, on a connection of its own. */
function get(port: number, from: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/', localAddress: from, agent: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

test('one address holds at most its share; a connection past it is closed at once, others still get in', async () => {
  const { port, guard } = await serve(100, 3);
  for (let i = 0; i < 3; i++) await connect(port, '127.0.0.2');
  await waitFor(() => guard.stats().open === 3, 3000, 10);
  const fourth = await connect(port, '127.0.0.2');
  await fourth.gone; // closed by the server, without an answer
  expect(guard.stats()).toMatchObject({ open: 3, refusedPerAddress: 1, refusedFull: 0, evicted: 0 });
  expect(await get(port, '127.0.0.3')).toEqual({ status: 200, body: 'ok' });
});

test('when every place is taken, a newcomer takes the oldest idle place of the address holding the most', async () => {
  const { port, guard } = await serve(4, 0);
  const held = [];
  for (let i = 0; i < 4; i++) held.push(await connect(port, '127.0.0.2', 'GET / HTTP/1.1\r\nHo')); // stalled headers
  await waitFor(() => guard.stats().open === 4, 3000, 10);
  expect(await get(port, '127.0.0.3')).toEqual({ status: 200, body: 'ok' });
  await held[0].gone; // the oldest made room
  expect(guard.stats().evicted).toBe(1);
  expect(held.slice(1).every((s) => !s.destroyed)).toBe(true);
  // The heaviest address cannot take from the others, nor from itself: full.
  await waitFor(() => guard.stats().open === 3, 3000, 10);
  await connect(port, '127.0.0.3');
  await waitFor(() => guard.stats().open === 4, 3000, 10);
  const more = await connect(port, '127.0.0.2');
  await more.gone;
  expect(guard.stats()).toMatchObject({ refusedFull: 1, evicted: 1, open: 4 });
});

test('a connection serving a request is never evicted: the newcomer is refused instead', async () => {
  const s = await serve(2, 0, true);
  const answers = [0, 1].map(() => get(s.port, '127.0.0.2'));
  await waitFor(() => s.holding === 2, 3000, 10);
  const newcomer = await connect(s.port, '127.0.0.3');
  await newcomer.gone;
  expect(s.guard.stats()).toMatchObject({ refusedFull: 1, evicted: 0, open: 2 });
  s.release();
  expect(await Promise.all(answers)).toEqual([
    { status: 200, body: 'ok' },
    { status: 200, body: 'ok' },
  ]);
});

test('under pressure (¾ open) idle and header timeouts shorten; under half they are restored', async () => {
  const { port, guard, server } = await serve(8, 0);
  // An idle keep-alive connection: its timer is re-armed short when the pressure starts.
  const agent = new http.Agent({ keepAlive: true });
  await new Promise<void>((resolve, reject) =>
    http
      .get({ host: '127.0.0.1', port, path: '/', localAddress: '127.0.0.4', agent }, (res) => {
        res.resume();
        res.on('end', resolve);
      })
      .on('error', reject),
  );
  const idle = Object.values(agent.freeSockets).flat()[0]!;
  const idleClosed = new Promise<void>((r) => idle.once('close', () => r()));
  const held = [];
  for (let i = 0; i < 5; i++) held.push(await connect(port, '127.0.0.2'));
  await waitFor(() => guard.stats().open === 6, 3000, 10);
  expect(guard.stats().underPressure).toBe(true);
  expect(server.keepAliveTimeout).toBe(PRESSURE_KEEP_ALIVE_MS);
  expect(server.headersTimeout).toBe(PRESSURE_HEADERS_MS);
  const t0 = Date.now();
  await idleClosed;
  expect(Date.now() - t0).toBeLessThan(PRESSURE_KEEP_ALIVE_MS + 1000);
  agent.destroy();
  for (const s of held.slice(0, 4)) s.destroy();
  await waitFor(() => guard.stats().open === 1, 3000, 10);
  expect(guard.stats().underPressure).toBe(false);
  expect(server.keepAliveTimeout).toBe(65_000);
  expect(server.headersTimeout).toBe(30_000);
});

test('limits out of range are refused', () => {
  const server = http.createServer();
  expect(() => new ConnectionGuard(server, { maxConnections: 0, maxPerAddress: 1 })).toThrow(RangeError);
  expect(() => new ConnectionGuard(server, { maxConnections: 1, maxPerAddress: -1 })).toThrow(RangeError);
});

test('the address holding the most is kept through any sequence of opens and closes (against a full scan)', () => {
  const held = new SocketsByAddress<object>();
  // The sockets each address holds, oldest first.
  const reference = new Map<string, object[]>();
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let step = 0; step < 5_000; step++) {
    const address = `10.0.0.${Math.floor(random() * 40)}`;
    const mine = reference.get(address) ?? [];
    if (random() < 0.55) {
      const socket = {};
      held.add(address, socket);
      reference.set(address, [...mine, socket]);
    } else if (mine.length === 0) {
      expect(held.delete(address, {})).toBe(false); // closing one it does not hold changes nothing
    } else {
      const closing = mine[Math.floor(random() * mine.length)];
      expect(held.delete(address, closing)).toBe(true);
      expect(held.delete(address, closing)).toBe(false); // taken out once
      if (mine.length > 1)
        reference.set(
          address,
          mine.filter((x) => x !== closing),
        );
      else reference.delete(address);
    }
    const counts = new Map([...reference].map(([a, xs]) => [a, xs.length]));
    const most = Math.max(0, ...counts.values());
    const except = `10.0.0.${Math.floor(random() * 40)}`;
    const found = held.heaviest(except);
    const others = [...counts].filter(([a, n]) => a !== except && n === most);
    if (others.length === 0) expect(found).toBeUndefined();
    else expect(found).toEqual({ address: expect.any(String), count: most });
    if (found) expect(counts.get(found.address)).toBe(most);
    expect(held.countOf(address)).toBe(counts.get(address) ?? 0);
    expect(held.addresses).toBe(reference.size);
    expect([...held.of(address)]).toEqual(reference.get(address) ?? []);
    expect(held.size).toBe([...counts.values()].reduce((a, n) => a + n, 0));
  }
  expect([...held.all()]).toHaveLength(held.size);
});

test('the service applies its limits from the environment: a screen gets in past a full house of stalled connections', async () => {
  const server = await startServer({ ADVSIEVE_MAX_CONNECTIONS: '12', ADVSIEVE_MAX_CONNECTIONS_PER_ADDRESS: '4' });
  try {
    // The house is full at once, and the screen follows: under pressure a stalled connection is cut
    // 2 s after it opened, so a slow test would find places free and evict nothing.
    const held = [];
    for (const from of ['127.0.0.2', '127.0.0.3', '127.0.0.4'])
      for (let i = 0; i < 4; i++) held.push(await connect(server.port, from, 'POST /graphql HTTP/1.1\r\nHo'));
    const fifth = await connect(server.port, '127.0.0.2');
    await fifth.gone; // past its address's 4
    const body = JSON.stringify({
      query: 'mutation($i:[ImageInput!]!){screen(images:$i){prediction{label}}}',
      variables: { i: [{ base64: fs.readFileSync(fixtureFiles()[0]).toString('base64') }] },
    });
    const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: server.port,
          path: '/graphql',
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text).data.screen[0].prediction.label).toEqual(expect.any(String));
    const metrics = await (await fetch(`${server.base}/metrics`)).text();
    const value = (reason: string) =>
      Number(metrics.match(new RegExp(`advsieve_connections_closed_by_limit\\{reason="${reason}"\\} (\\d+)`))?.[1]);
    expect(value('per_address')).toBeGreaterThanOrEqual(1);
    expect(value('evicted')).toBeGreaterThanOrEqual(1);
  } finally {
    await server.stop();
  }
}, 120_000);
