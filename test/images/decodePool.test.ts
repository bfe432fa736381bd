/**
 * The decode processes (src/images/decodePool.ts): decoding happens off this thread, a decode past
 * its budget (ADVSIEVE_DECODE_TIMEOUT_MS, or less when the request's deadline is nearer) kills its
 * process — the CPU is freed at once — and a process that dies on an image fails that image alone;
 * either way a fresh process takes its place. Needs the build (`npm run build`): the processes run
 * dist/images/decodeProcess.js.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { decodeViews } from '../../src/images/decode';
import { ImageDecodeError } from '../../src/images/decodeErrors';
import { DecodeDeadlineError, DecodePool, processCpuMs, WALL_FACTOR } from '../../src/images/decodePool';
import { slowPng } from '../api/hostileFiles';
import { FIXTURE_DIR } from '../helpers/fixtures';
import { waitFor } from '../helpers/waitFor';

const GREY: [number, number, number] = [28, 28, 1];
const trouser = fs.readFileSync(path.join(FIXTURE_DIR, 'test-0002-trouser.png'));
let slow: Buffer;
const pools: DecodePool[] = [];

function pool(size: number, timeoutMs: number, script?: string): DecodePool {
  const p = new DecodePool(size, timeoutMs, script);
  pools.push(p);
  return p;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  slow = await slowPng();
}, 60_000);

afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

test('decodes in a child process: the same views as in process, as Float32Arrays', async () => {
  const p = pool(2, 5000);
  const got = await p.decode(trouser, GREY);
  const want = await decodeViews(trouser, GREY);
  expect(got.views.map((v) => v.name)).toEqual(['image']);
  expect(Object.prototype.toString.call(got.views[0].pixels)).toBe('[object Float32Array]'); // not a JSON array
  expect(Array.from(got.views[0].pixels)).toEqual(Array.from(want.views[0].pixels));
  expect(p.pids).toHaveLength(2);
  expect(p.pids).not.toContain(process.pid);
});

test('a decode past its budget: DECODE_TIMEOUT in about the budget, its process killed and replaced, the next decode fast', async () => {
  const p = pool(1, 150);
  await p.decode(trouser, GREY); // started and warm
  const [before] = p.pids;
  const start = performance.now();
  const err = await p.decode(slow, GREY).catch((e: unknown) => e);
  const took = performance.now() - start;
  expect(err).toBeInstanceOf(ImageDecodeError);
  expect(err).toMatchObject({ code: 'DECODE_TIMEOUT' });
  // Its CPU budget, or on a machine too busy to give the niced process 150 ms of CPU in time, the wall-clock cap.
  expect((err as Error).message).toMatch(
    new RegExp(`more than (its budget of 150 ms of CPU time|the ${WALL_FACTOR * 150} ms it had); it was stopped`),
  );
  expect(took).toBeLessThan(1000);
  await waitFor(() => !alive(before)); // SIGKILLed: its CPU is free
  expect(p.timeouts).toBe(1);
  const t2 = performance.now();
  await expect(p.decode(trouser, GREY)).resolves.toMatchObject({ format: 'png' });
  expect(performance.now() - t2).toBeLessThan(3000); // a fresh process (start-up included)
  expect(p.pids).toHaveLength(1);
  expect(p.pids[0]).not.toBe(before);
});

test('the budget is the request’s time left when that is less than the timeout', async () => {
  const p = pool(1, 60_000);
  await p.decode(trouser, GREY);
  const start = performance.now();
  const err = await p.decode(slow, GREY, {}, performance.now() + 150).catch((e: unknown) => e);
  expect(err).toMatchObject({ code: 'DECODE_TIMEOUT' });
  expect((err as Error).message).toMatch(/more than the 150 ms it had; it was stopped/);
  expect(performance.now() - start).toBeLessThan(1000);
});

test('the budget is CPU time: a process kept from running is not charged, up to WALL_FACTOR × the budget of wall-clock time', async () => {
  expect(processCpuMs(process.pid)).toBeGreaterThan(0);
  const p = pool(1, 200);
  await p.decode(trouser, GREY);
  const [pid] = p.pids;
  // Stopped for 400 ms of wall-clock time (a busy machine, exaggerated): it used no CPU, so no budget.
  process.kill(pid, 'SIGSTOP');
  const late = p.decode(trouser, GREY);
  await new Promise((r) => setTimeout(r, 400));
  process.kill(pid, 'SIGCONT');
  await expect(late).resolves.toMatchObject({ format: 'png' });
  expect(p.timeouts).toBe(0);
  // Stopped for good: stopped after WALL_FACTOR × 200 ms = 800 ms.
  process.kill(pid, 'SIGSTOP');
  const start = performance.now();
  const err = await p.decode(trouser, GREY).catch((e: unknown) => e);
  expect(err).toMatchObject({ code: 'DECODE_TIMEOUT' });
  expect((err as Error).message).toMatch(new RegExp(`more than the ${WALL_FACTOR * 200} ms it had`));
  expect(performance.now() - start).toBeGreaterThanOrEqual(WALL_FACTOR * 200 - 5);
  expect(p.timeouts).toBe(1);
});

test('a file still waiting for a process when its deadline passes is never started', async () => {
  const p = pool(1, 400);
  await p.decode(trouser, GREY);
  const first = p.decode(slow, GREY).catch((e: unknown) => e);
  const second = p.decode(trouser, GREY, {}, performance.now() + 50).catch((e: unknown) => e);
  expect(await second).toBeInstanceOf(DecodeDeadlineError);
  expect(await first).toMatchObject({ code: 'DECODE_TIMEOUT' });
});

test('this thread is not blocked while decodes run: timers fire on time', async () => {
  const p = pool(2, 60_000);
  await p.decode(trouser, GREY);
  let worst = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - 10);
    last = now;
  }, 10);
  await Promise.all([slow, slow].map((f) => p.decode(f, GREY)));
  clearInterval(timer);
  // In process, each of these blocked one of libuv's threads for ~1.5 s; the chunk walks of a hostile PNG
  // blocked this thread itself (~1.3 s each). Here only scheduling noise remains (the decode processes run
  // niced): tens of ms on a quiet machine, up to ~0.5 s measured on 2 cores at load 6.
  expect(worst).toBeLessThan(1000);
});

test('a process that dies on an image fails that image alone (DECODE_FAILED) and is replaced', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-decode-'));
  const script = path.join(dir, 'crashing.js');
  // Crashes (as a libvips abort would) on files of one byte; answers the rest with an empty view.
  fs.writeFileSync(
    script,
    `process.on('message', (m) => {
       if (m.length === 1) process.abort();
       process.send({ id: m.id, ok: { views: [{ name: 'image', pixels: new Float32Array(784) }], format: 'png', originalWidth: 28, originalHeight: 28 } });
     });
     process.on('disconnect', () => process.exit(0));
     process.send({ ready: true });`,
  );
  try {
    const p = pool(1, 5000, script);
    const [a, b] = await Promise.all([
      p.decode(Buffer.from([1]), GREY).catch((e: unknown) => e),
      p.decode(trouser, GREY),
    ]);
    expect(a).toMatchObject({ code: 'DECODE_FAILED' });
    expect((a as Error).message).not.toMatch(/signal|SIGABRT|exit/);
    expect(b.views).toHaveLength(1);
    expect(p.crashes).toBe(1);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
