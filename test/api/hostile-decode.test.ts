/**
 * Decoding cannot take the service down or hide content (issue 11, items 3, 4, 6 and 10), against a
 * started server: files whose decoding costs far more than their size are refused or stopped within
 * their budget while /health/live and a good request sent at the same time are answered; images
 * with alpha are screened in both views and multi-frame files are refused (or screened frame by
 * frame); decoder errors say nothing of the libraries. Every file is made here, at test time.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import sharp from 'sharp';
import { waitFor } from '../helpers/waitFor';
import { fixtureFiles, gql, gqlMultipart, GqlResponse, startServer, TestServer } from './helpers';
import {
  apng,
  hiddenUnderAlpha,
  iccProfileWithStages,
  jpegWithScans,
  multiFrame,
  pngWithIcc,
  pngWithManyIdat,
  slowPng,
} from './hostileFiles';

/**
 * The test servers' decode budget: far below what slowPng() costs (~850 ms measured on a quiet
 * machine here, more under load; 1000 ms let it finish in time on a quiet one), far above what
 * every other file needs (the 20 000-stage ICC PNG: 16 ms; a fixture: ~1 ms).
 */
const DECODE_TIMEOUT_MS = 300;
const CLASSIFY = `mutation($images: [ImageInput!]!) { classify(images: $images) { index prediction { label } error { code message } } }`;
const SCREEN = `mutation($images: [ImageInput!]!) { screen(images: $images) {
  index prediction { label } detection { adversarial score }
  views { name adversarial score prediction { label } } flaggedView error { code message } } }`;
const INTERNALS = /vips|libpng|libjpeg|tiff2vips|jpeg2vips|gifload|webpload|Input buffer|VipsJpeg|spng|lcms/i;

interface Row {
  index: number;
  prediction: { label: string } | null;
  error: { code: string; message: string } | null;
}
interface ScreenRow extends Row {
  detection: { adversarial: boolean; score: number } | null;
  views: Array<{ name: string; adversarial: boolean; score: number; prediction: { label: string } }> | null;
  flaggedView: string | null;
}

const files = fixtureFiles();
const trouser = fs.readFileSync(files.find((f) => f.includes('trouser'))!);
const sandal = fs.readFileSync(files.find((f) => f.includes('sandal'))!);
const b64 = (b: Buffer) => ({ base64: b.toString('base64') });
let server: TestServer;
let slow: Buffer;

function rows<T>(r: GqlResponse<Record<string, T[]>>, field: string): T[] {
  if (!r.body.data) throw new Error(`HTTP ${r.status}, no data: ${JSON.stringify(r.body.errors)}`);
  return r.body.data[field];
}

const codeOf = (r: Row) => r.error?.code ?? 'ok';

/** The server's decode processes: its children running decodeProcess.js. */
function decodePids(): number[] {
  return fs.readdirSync('/proc').flatMap((entry) => {
    if (!/^\d+$/.test(entry)) return [];
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'latin1');
      return ppid === server.proc.pid && cmd.includes('decodeProcess') ? [Number(entry)] : [];
    } catch {
      return []; // gone meanwhile
    }
  });
}

/** Polls /health/live every 10 ms from a child process until stopped; the latencies in ms. */
function probeLiveness(base: string): { stop(): Promise<number[]> } {
  const script = `
    const latencies = [];
    let running = true;
    process.on('message', () => { running = false; });
    (async () => {
      while (running) {
        const t = performance.now();
        const r = await fetch('${base}/health/live');
        await r.arrayBuffer();
        latencies.push(r.status === 200 ? performance.now() - t : Infinity);
        await new Promise((r2) => setTimeout(r2, 10));
      }
      process.send(latencies, () => process.exit(0));
    })();`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const result = new Promise<number[]>((resolve) => child.once('message', (m) => resolve(m as number[])));
  return {
    stop: () => {
      child.send('stop');
      return result;
    },
  };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

beforeAll(async () => {
  [server, slow] = await Promise.all([
    startServer({
      ADVSIEVE_AUDIT: '0',
      ADVSIEVE_DECODE_TIMEOUT_MS: String(DECODE_TIMEOUT_MS),
      ADVSIEVE_DECODE_CONCURRENCY: '2',
    }),
    slowPng(),
  ]);
  // The engine's first batches compile their kernels: not what is measured here.
  for (let i = 0; i < 3; i++) await gql(server, CLASSIFY, { images: [b64(trouser), b64(sandal)] });
}, 120_000);

afterAll(async () => {
  expect(server.proc.exitCode).toBeNull(); // alive after everything
  expect((await server.stop()).code).toBe(0);
});

test('hostile decoding in one request: /health/live stays fast, a good request sent meanwhile is answered, each file gets its code', async () => {
  const rgb = await sharp(trouser).toColourspace('srgb').png().toBuffer();
  const icc = pngWithIcc(rgb, iccProfileWithStages(20_000)); // ~10 s of lcms before: now not applied
  // ~1 s of this thread each before: now refused by their chunk count on this thread, in bounded
  // time, before any decode process sees them (so however busy the machine, never DECODE_TIMEOUT).
  const chunks = Array.from({ length: 6 }, (_, i) => pngWithManyIdat(trouser, 400_000 - i));
  const scans = jpegWithScans(await sharp(trouser).resize(64, 64).jpeg({ progressive: true }).toBuffer(), 5000);
  const hostile = [...chunks, ...Array<Buffer>(3).fill(icc), slow, slow, scans];
  // The prober is a process of its own: this one is busy building and sending 30 MB of upload, and
  // its own pauses would be counted as the server's.
  const prober = probeLiveness(server.base);
  const start = performance.now();
  const attack = gqlMultipart<{ classify: Row[] }>(server, CLASSIFY, hostile);
  await new Promise((r) => setTimeout(r, 200));
  const goodStart = performance.now();
  const good = await gql<{ classify: Row[] }>(server, CLASSIFY, { images: [b64(trouser), b64(sandal)] });
  const goodMs = performance.now() - goodStart;
  const answer = await attack;
  const attackMs = performance.now() - start;
  const latencies = await prober.stop();
  const p99 = percentile(latencies, 99);
  const metrics = await (await fetch(`${server.base}/metrics`)).text();
  const rss = Number(/^advsieve_process_resident_memory_bytes (\S+)/m.exec(metrics)![1]);
  const decodeRss = decodePids().map(
    (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'))![1]) * 1024,
  );
  console.log(
    `RSS after: service ${(rss / 2 ** 20).toFixed(0)} MiB, decode processes ${decodeRss.map((b) => (b / 2 ** 20).toFixed(0)).join(' + ')} MiB`,
  );
  console.log(
    `hostile decode: request ${attackMs.toFixed(0)} ms, good request ${goodMs.toFixed(0)} ms, ` +
      `/health/live p50 ${percentile(latencies, 50).toFixed(1)} ms p99 ${p99.toFixed(1)} ms max ${Math.max(...latencies).toFixed(1)} ms over ${latencies.length} probes`,
  );
  expect(rows(good, 'classify').map((r) => r.prediction?.label)).toEqual(['Trouser', 'Sandal']);
  expect(goodMs).toBeLessThan(3000);
  const got = rows(answer, 'classify');
  expect(got.map(codeOf)).toEqual([
    ...Array<string>(6).fill('IMAGE_TOO_COMPLEX'),
    'ok', // the same bytes three times: decoded once
    'ok',
    'ok',
    'DECODE_TIMEOUT',
    'DECODE_TIMEOUT',
    'IMAGE_TOO_COMPLEX',
  ]);
  expect(got[0].error!.message).toMatch(/maxPngChunks/);
  expect(got[11].error!.message).toMatch(/maxJpegScans/);
  expect(got[6].prediction!.label).toBe('Trouser');
  expect(attackMs).toBeLessThan(10_000);
  expect(latencies.length).toBeGreaterThan(10);
  // What this pins is a thread held for seconds (16 such files froze /health/live for 17 s before);
  // the 50 ms goal is bench:hostile's figure. Under CI's parallel suites one probe in ~90 took 207 ms.
  expect(p99).toBeLessThan(1000);
  // One decode ran past its budget (the slow bytes, sent twice, decoded once) and its process was killed.
  expect(metrics).toMatch(/^advsieve_decode_processes_killed 1$/m);
  expect(metrics).toMatch(/^advsieve_decode_processes_crashed 0$/m);
}, 60_000);

test('a decode past ADVSIEVE_DECODE_TIMEOUT_MS: DECODE_TIMEOUT in about that time, its process killed (CPU freed) and replaced', async () => {
  await waitFor(() => decodePids().length === 2, 10_000, 25);
  const before = decodePids();
  const start = performance.now();
  const r = await gql<{ classify: Row[] }>(server, CLASSIFY, { images: [b64(slow), b64(trouser)] });
  const ms = performance.now() - start;
  const [late, good] = rows(r, 'classify');
  expect(good.error).toBeNull();
  expect(late.error!.code).toBe('DECODE_TIMEOUT');
  // Its CPU budget, or — on a machine too busy to give the niced process that much CPU in time —
  // the wall-clock cap of 4 × the budget.
  expect(late.error!.message).toMatch(
    new RegExp(
      `^decoding the image took more than (its budget of ${DECODE_TIMEOUT_MS} ms of CPU time|the ${4 * DECODE_TIMEOUT_MS} ms it had); it was stopped$`,
    ),
  );
  expect(good.prediction!.label).toBe('Trouser');
  expect(ms).toBeLessThan(DECODE_TIMEOUT_MS + 1500);
  // One of the two processes was killed: gone, and a new one in its place.
  await waitFor(
    () => {
      const now = decodePids();
      return now.length === 2 && now.filter((p) => before.includes(p)).length === 1;
    },
    10_000,
    25,
  );
  const t2 = performance.now();
  const again = await gql<{ classify: Row[] }>(server, CLASSIFY, { images: [b64(sandal)] });
  expect(rows(again, 'classify')[0].prediction!.label).toBe('Sandal');
  expect(performance.now() - t2).toBeLessThan(2000);
}, 30_000);

test('alpha: a trouser hidden under alpha = 0 is screened in both views; the alpha-dropped view is a Trouser', async () => {
  const hidden = await hiddenUnderAlpha(trouser);
  const r = await gql<{ screen: ScreenRow[] }>(server, SCREEN, { images: [b64(hidden), b64(trouser)] });
  const [h, plain] = rows(r, 'screen');
  expect(h.error).toBeNull();
  expect(h.views!.map((v) => v.name)).toEqual(['composited', 'alpha-dropped']);
  const [composited, dropped] = h.views!;
  expect(dropped.prediction.label).toBe('Trouser');
  expect(composited.prediction.label).not.toBe('Trouser'); // a black square
  // The reported verdict is the most suspicious view's; flaggedView names it when flagged.
  const top = h.views!.reduce((a, b) => (b.score > a.score ? b : a));
  expect(h.detection!.score).toBe(top.score);
  expect(h.prediction!.label).toBe(top.prediction.label);
  expect(h.detection!.adversarial).toBe(h.views!.some((v) => v.adversarial));
  expect(h.flaggedView).toBe(h.detection!.adversarial ? top.name : null);
  // An opaque image: one view, its verdict the result's.
  expect(plain.views).toEqual([
    {
      name: 'image',
      adversarial: plain.detection!.adversarial,
      score: plain.detection!.score,
      prediction: { label: 'Trouser' },
    },
  ]);
  // classify reports the policy's view (composited), as documented.
  const c = await gql<{ classify: Row[] }>(server, CLASSIFY, { images: [b64(hidden)] });
  expect(rows(c, 'classify')[0].prediction!.label).toBe(composited.prediction.label);
});

test('multi-frame GIF, TIFF, WebP and APNG are refused by default: MULTI_FRAME_IMAGE', async () => {
  const frames = await Promise.all((['gif', 'tiff', 'webp'] as const).map((f) => multiFrame(f, [trouser, sandal])));
  const r = await gql<{ screen: ScreenRow[] }>(server, SCREEN, { images: [...frames, apng(trouser, sandal)].map(b64) });
  expect(rows(r, 'screen').map(codeOf)).toEqual(Array(4).fill('MULTI_FRAME_IMAGE'));
});

test('decoder errors carry generic messages, never the libraries’ (vipspng, tiff2vips, …)', async () => {
  const made = await Promise.all(
    (['png', 'jpeg', 'tiff', 'gif', 'webp'] as const).map((f) =>
      sharp(trouser).resize(100, 100).toFormat(f).toBuffer(),
    ),
  );
  const damaged = made.map((b) => {
    const out = Buffer.from(b.subarray(0, Math.floor(b.length * 0.6)));
    out.fill(0x5a, Math.floor(out.length * 0.3), Math.floor(out.length * 0.5));
    return out;
  });
  const got = rows(await gql<{ classify: Row[] }>(server, CLASSIFY, { images: damaged.map(b64) }), 'classify');
  expect(got.map(codeOf)).toEqual(Array(5).fill('CORRUPT_IMAGE'));
  for (const row of got) {
    expect(row.error!.message).not.toMatch(INTERNALS);
    expect(row.error!.message).toMatch(/could not be (decoded|read) \(damaged or truncated data\)$/);
  }
});

describe('ADVSIEVE_MULTI_FRAME=screen', () => {
  let screening: TestServer;
  beforeAll(async () => {
    screening = await startServer({
      ADVSIEVE_AUDIT: '0',
      ADVSIEVE_MULTI_FRAME: 'screen',
      ADVSIEVE_DECODE_CONCURRENCY: '1',
    });
  }, 120_000);
  afterAll(async () => {
    expect((await screening.stop()).code).toBe(0);
  });

  test('every frame is a view with its own prediction; an APNG is still refused', async () => {
    const frames = await Promise.all((['gif', 'tiff', 'webp'] as const).map((f) => multiFrame(f, [trouser, sandal])));
    const r = await gql<{ screen: ScreenRow[] }>(screening, SCREEN, {
      images: [...frames, apng(trouser, sandal)].map(b64),
    });
    const got = rows(r, 'screen');
    for (const row of got.slice(0, 3)) {
      expect(row.error).toBeNull();
      expect(row.views!.map((v) => [v.name, v.prediction.label])).toEqual([
        ['frame:0', 'Trouser'],
        ['frame:1', 'Sandal'],
      ]);
      expect(row.detection!.adversarial).toBe(row.views!.some((v) => v.adversarial));
    }
    expect(codeOf(got[3])).toBe('MULTI_FRAME_IMAGE');
  });
});
