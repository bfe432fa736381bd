/**
 * The attacks `npm run bench:hostile` runs, one per class of the gateway's availability and
 * integrity holes: each is a sample of its class, made here from the fixtures at run time. A
 * scenario only attacks; src/bench/hostile.ts watches what the service does meanwhile.
 */
import * as net from 'net';
import * as zlib from 'zlib';
import { fixtureBytes, resultFromChild, sleep } from './load';
import { PNG_SIGNATURE, pngChunk } from './pngChunks';

export interface ScenarioTools {
  readonly port: number;
  readonly attackerKey: string;
  /** Longest the scenario should run. */
  readonly seconds: number;
  request(opts: {
    method?: string;
    path?: string;
    headers?: Record<string, string | number>;
    body?: Buffer | string;
  }): Promise<{ status: number; code: string; ms: number; text: string }>;
  rawSocket(): Promise<net.Socket>;
}

export interface HostileScenario {
  readonly name: string;
  /** The item it samples, and what it does. */
  readonly what: string;
  /** Service settings this scenario needs besides production mode and keys. */
  readonly env?: Record<string, string>;
  run(tools: ScenarioTools): Promise<unknown>;
  summarise?(result: unknown): unknown;
}

type Answer = { status: number; code: string; ms: number };

/** Counts of `status code` pairs, with the slowest answer. */
export function tally(answers: readonly Answer[]): { n: number; statuses: Record<string, number>; maxMs: number } {
  const statuses: Record<string, number> = {};
  for (const a of answers) statuses[`${a.status} ${a.code}`] = (statuses[`${a.status} ${a.code}`] ?? 0) + 1;
  return { n: answers.length, statuses, maxMs: Math.round(Math.max(0, ...answers.map((a) => a.ms))) };
}

/** `count` requests of the attacker's `body` at a time, again and again until `seconds` have passed. */
async function repeatedly(tools: ScenarioTools, concurrency: number, send: () => Promise<Answer>): Promise<Answer[]> {
  const answers: Answer[] = [];
  const until = performance.now() + tools.seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) answers.push(await send());
    }),
  );
  return answers;
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/**
 * A 28×28 grey PNG whose image data is split among `chunks` IDAT chunks, most of them empty: a
 * valid file within every size limit whose chunk walk and per-chunk inflation cost the decoder.
 */
export function manyChunkPng(chunks: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(28, 0);
  ihdr.writeUInt32BE(28, 4);
  ihdr[8] = 8;
  const raw = Buffer.alloc(28 * 29, 0x40);
  for (let y = 0; y < 28; y++) raw[y * 29] = 0;
  const data = zlib.deflateSync(raw);
  const empty = pngChunk('IDAT', Buffer.alloc(0));
  const parts = [PNG_SIGNATURE, pngChunk('IHDR', ihdr)];
  for (let i = 0; i < data.length; i++) parts.push(pngChunk('IDAT', data.subarray(i, i + 1)));
  for (let i = data.length; i < chunks; i++) parts.push(empty);
  parts.push(pngChunk('IEND', Buffer.alloc(0)));
  return Buffer.concat(parts);
}

/** Addresses (127.0.0.2, …) the connection flood comes from, one process each (BENCH_HOSTILE_FLOOD_ADDRESSES). */
const FLOOD_ADDRESSES = Number(process.env.BENCH_HOSTILE_FLOOD_ADDRESSES ?? 3);

export interface FloodResult {
  opened: number;
  peakOpen: number;
  closedByService: number;
  connectFailures: number;
}

/**
 * Holds up to `wanted` connections to `port` from `localAddress` until `seconds` have passed:
 * half idle after one request, half stalled in their headers; each one the service closes is
 * opened again.
 */
export async function floodConnections(
  port: number,
  localAddress: string,
  wanted: number,
  seconds: number,
): Promise<FloodResult> {
  const until = performance.now() + seconds * 1000;
  const result: FloodResult = { opened: 0, peakOpen: 0, closedByService: 0, connectFailures: 0 };
  let open = 0;
  const connect = () =>
    new Promise<net.Socket | undefined>((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1', localAddress }, () => resolve(s));
      s.once('error', () => resolve(undefined));
    });
  const hold = async (idle: boolean): Promise<void> => {
    while (performance.now() < until) {
      const s = await connect();
      if (!s) {
        result.connectFailures++;
        await sleep(50);
        continue;
      }
      result.opened++;
      result.peakOpen = Math.max(result.peakOpen, ++open);
      await new Promise<void>((resolve) => {
        s.on('error', () => undefined);
        s.on('data', () => undefined);
        s.once('close', () => resolve());
        s.write(idle ? 'GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n' : 'GET /health/live HTTP/1.1\r\nHo');
        setTimeout(() => s.destroy(), Math.max(0, until - performance.now())).unref();
      });
      open--;
      if (performance.now() < until) result.closedByService++;
    }
  };
  const holders: Promise<void>[] = [];
  // In waves of 500, so the connects themselves do not overflow the listen backlog.
  for (let i = 0; i < wanted && performance.now() < until; i++) {
    holders.push(hold(i % 2 === 0));
    if (i % 500 === 499) await sleep(100);
  }
  await Promise.all(holders);
  return result;
}

/** Runs floodConnections in a process of its own (src/bench/hostile.ts --flood ADDRESS). */
function floodFromChild(port: number, localAddress: string, seconds: number): Promise<FloodResult> {
  return resultFromChild<FloodResult>(
    require.main!.filename,
    ['--flood', localAddress],
    { HOSTILE_PORT: String(port), BENCH_HOSTILE_SECONDS: String(seconds) },
    `flood from ${localAddress}`,
  );
}

const SCREEN = 'mutation($i:[ImageInput!]!){screen(images:$i){index detection{adversarial} error{code}}}';

export const hostileScenarios: HostileScenario[] = [
  {
    name: 'pipelining',
    what: 'item 1: 4 connections each send a slow request (1 M unused variables) and pipeline 300 more without a key behind it, never read, then close',
    async run(tools) {
      const slowBody = `{"query":"{__typename}","variables":{${Array.from({ length: 1_000_000 }, (_, i) => `"k${i}":0`).join(',')}}}`;
      const slow = Buffer.from(
        `POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tools.attackerKey}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(slowBody)}\r\n\r\n${slowBody}`,
      );
      const small = Buffer.from(
        'POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 24\r\n\r\n{"query":"{__typename}"}',
      );
      const sockets = await Promise.all(Array.from({ length: 4 }, () => tools.rawSocket()));
      for (const s of sockets) {
        s.on('error', () => undefined);
        s.pause(); // never read
        s.write(Buffer.concat([slow, ...Array.from({ length: 300 }, () => small)]));
      }
      await sleep(1000);
      for (const s of sockets) s.destroy();
      await sleep(Math.max(0, tools.seconds * 1000 - 1000) / 2);
      return { connections: 4, requests: 4 * 301 };
    },
  },
  {
    name: 'byte-budget',
    what: 'item 2: one multipart request declares 512 MiB (retried until admitted) and trickles its body',
    async run(tools) {
      const start = performance.now();
      for (let attempt = 1; performance.now() - start < tools.seconds * 1000; attempt++) {
        const s = await tools.rawSocket();
        s.on('error', () => undefined);
        let closed = false;
        let answer = '';
        s.on('data', (d: Buffer) => (answer += d.toString('latin1')));
        s.on('close', () => (closed = true));
        s.write(
          'POST /graphql HTTP/1.1\r\nHost: x\r\nApollo-Require-Preflight: true\r\n' +
            `Authorization: Bearer ${tools.attackerKey}\r\n` +
            'Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 536870912\r\n\r\n--b\r\n',
        );
        await sleep(200);
        if (closed || answer.length > 0) {
          s.destroy();
          if (answer.startsWith('HTTP/1.1 503')) continue; // not admitted now: try again, as an attacker would
          return { attempts: attempt, admitted: false, answer: answer.split('\r\n')[0] };
        }
        // Admitted: trickle a byte every 500 ms until cut off or out of time.
        const admittedAt = performance.now();
        while (!closed && performance.now() - start < tools.seconds * 1000) {
          s.write('x');
          await sleep(500);
        }
        const heldMs = Math.round(performance.now() - admittedAt);
        s.destroy();
        return {
          attempts: attempt,
          admitted: true,
          heldMs,
          cutOff: closed,
          answer: answer.split('\r\n')[0] || '(none)',
        };
      }
      return { admitted: false };
    },
  },
  {
    name: 'idat-chunks',
    what: 'item 4: 28×28 PNGs of ~380 k IDAT chunks (4.9 MB), 2 distinct ones per request, 2 requests at a time',
    async run(tools) {
      // Distinct files (one more empty chunk): the same bytes twice would be decoded once per request.
      const files = [manyChunkPng(380_000), manyChunkPng(380_001)];
      const body = JSON.stringify({
        query: SCREEN,
        variables: { i: files.map((f) => ({ base64: f.toString('base64') })) },
      });
      return tally(await repeatedly(tools, 2, () => tools.request({ body, headers: bearer(tools.attackerKey) })));
    },
  },
  {
    name: 'json-variables',
    what: 'item 4: 12 MB JSON bodies whose variables hold 1 M unused keys, 2 at a time',
    async run(tools) {
      const keys = Array.from({ length: 1_000_000 }, (_, i) => `"k${i}":0`).join(',');
      const body = `{"query":"{__typename}","variables":{${keys}}}`;
      return tally(await repeatedly(tools, 2, () => tools.request({ body, headers: bearer(tools.attackerKey) })));
    },
  },
  {
    name: 'spectrum-aliases',
    what: 'item 5: 8 batched operations of 16 aliased spectrum fields each (128 spectra per request)',
    async run(tools) {
      const aliases = Array.from({ length: 16 }, (_, i) => `s${i}: spectrum(image: $i) { highFrequencyShare }`).join(
        ' ',
      );
      const op = {
        query: `query($i: ImageInput!) { ${aliases} }`,
        variables: { i: { base64: fixtureBytes()[0].toString('base64') } },
      };
      const body = JSON.stringify(Array(8).fill(op));
      return tally(await repeatedly(tools, 2, () => tools.request({ body, headers: bearer(tools.attackerKey) })));
    },
  },
  {
    name: 'target-fpr',
    what: 'item 7: screen with targetFpr 1e-6 and 5e-324 (a looser threshold than the operator set)',
    async run(tools) {
      const image = { base64: fixtureBytes()[0].toString('base64') };
      const answers = [];
      for (const fpr of [1e-6, 5e-324]) {
        const body = JSON.stringify({
          query:
            'mutation($i:[ImageInput!]!,$f:Float){screen(images:$i,options:{targetFpr:$f}){detection{threshold targetFpr}}}',
          variables: { i: [image], f: fpr },
        });
        answers.push(await tools.request({ body, headers: bearer(tools.attackerKey) }));
      }
      return tally(answers);
    },
  },
  {
    name: 'connection-flood',
    what: `connections held open from ${FLOOD_ADDRESSES} addresses, each process as many as it may open: half send one request and keep the connection idle, half send part of a header and stall; each one closed is opened again`,
    async run(tools) {
      // One process per address: a process's descriptor limit caps its connections, and on one
      // machine the attacker shares the service's limit, so one process could never exhaust it.
      const parts = await Promise.all(
        Array.from({ length: FLOOD_ADDRESSES }, (_, i) =>
          floodFromChild(tools.port, `127.0.0.${2 + i}`, tools.seconds),
        ),
      );
      const sum = (k: keyof FloodResult) => parts.reduce((a, p) => a + p[k], 0);
      return {
        addresses: FLOOD_ADDRESSES,
        opened: sum('opened'),
        peakOpen: sum('peakOpen'),
        closedByService: sum('closedByService'),
        connectFailures: sum('connectFailures'),
      };
    },
  },
  {
    name: 'oracle',
    what: 'item 8: classify and trajectory (unscreened predictions) with a screen-only key',
    async run(tools) {
      const image = { base64: fixtureBytes()[0].toString('base64') };
      const answers = [];
      for (const [query, variables] of [
        ['mutation($i:[ImageInput!]!){classify(images:$i){prediction{label}}}', { i: [image] }],
        ['query($j:ImageInput!){trajectory(image:$j){__typename}}', { j: image }],
      ] as const) {
        answers.push(
          await tools.request({ body: JSON.stringify({ query, variables }), headers: bearer(tools.attackerKey) }),
        );
      }
      return tally(answers);
    },
  },
];
