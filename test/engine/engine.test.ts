/** The engine end to end: real worker threads, the bundled model, the shared batcher. */
import { initBackend } from '../../src/engine/backends';
import { DeadlineExceededError, OverloadError } from '../../src/engine/batcher';
import { Engine } from '../../src/engine/engine';
import { InferenceModel } from '../../src/engine/model';
import { faultPixels } from '../../src/engine/faultInjection';
import { WorkerCrashedError } from '../../src/engine/pool';
import { expectLogs } from '../helpers/expectedLogs';
import { BUNDLED_MODEL_DIR, fixtureLabels, fixturePixels } from '../helpers/fixtures';

let engine: Engine;
let images: Float32Array[];
let labels: number[];
/** The fixtures' probabilities from an undisturbed run. */
let reference: Float32Array[];

beforeAll(async () => {
  engine = await Engine.start({
    modelDir: BUNDLED_MODEL_DIR,
    backend: 'wasm',
    workers: 2,
    maxBatch: 8,
    maxDelayMs: 20,
    faultInjection: true,
  });
  const fx = fixtureLabels();
  images = await Promise.all(fx.map((f) => fixturePixels(f.file)));
  labels = fx.map((f) => f.label);
  reference = (await Promise.all(engine.infer(images))).map((o) => o.probs);
});
afterAll(async () => {
  await engine.close();
});

const argmax = (a: Float32Array) => a.indexOf(Math.max(...a));

test('the workers run the wasm backend and agree with the in-process model', async () => {
  expect(engine.pool.backend).toBe('wasm');
  expect(engine.pool.size).toBe(2);
  await initBackend('wasm');
  const local = await InferenceModel.load(BUNDLED_MODEL_DIR);
  const ref = await local.runBatch(images[0].slice(), 1);
  const [out] = await Promise.all(engine.infer([images[0]]));
  Array.from(out.probs).forEach((p, i) => expect(p).toBeCloseTo(ref.probs[i], 5));
  local.dispose();
});

test('classifies the committed fixtures through the batcher', async () => {
  const outs = await Promise.all(engine.infer(images));
  const correct = outs.filter((o, i) => argmax(o.probs) === labels[i]).length;
  expect(correct).toBeGreaterThanOrEqual(18);
  expect(outs[0].activations.conv2).toHaveLength(128); // 64 channels, mean and std each
});

test('concurrent callers share batches: fewer batches than images', async () => {
  const before = engine.stats();
  const callers = Array.from({ length: 40 }, (_, i) => Promise.all(engine.infer([images[i % images.length]])));
  await Promise.all(callers);
  const after = engine.stats();
  const batches = after.batches - before.batches;
  expect(after.items - before.items).toBe(40);
  expect(batches).toBeLessThan(40);
  expect(batches).toBeGreaterThanOrEqual(5); // maxBatch 8
});

async function healed(replacedBefore: number, replacements: number): Promise<void> {
  for (let i = 0; i < 150 && engine.pool.readyWorkers < 2; i++) await new Promise((r) => setTimeout(r, 100));
  expect(engine.pool.readyWorkers).toBe(2);
  expect(engine.pool.replacedWorkers).toBe(replacedBefore + replacements);
}

/** The engine's warnings about the deaths these tests cause on purpose: held, and asserted. */
const WORKER_DEATH = [/inference worker died mid-batch/, /the rerun died too/];
let logs: ReturnType<typeof expectLogs> | undefined;
afterEach(() => logs?.restore());

test('a worker that dies mid-batch: the batch runs again on another worker, nothing fails, the dead one is replaced', async () => {
  logs = expectLogs(WORKER_DEATH);
  const before = engine.stats();
  engine.pool.crashNextBatch();
  const first = Promise.allSettled(engine.infer(images.slice(0, 8))); // one full batch: the crash takes it
  const other = Promise.allSettled(engine.infer(images.slice(8, 16)));
  const [a, b] = await Promise.all([first, other]);
  expect([...a, ...b].every((r) => r.status === 'fulfilled')).toBe(true);
  const rerun = (a as Array<PromiseFulfilledResult<{ probs: Float32Array }>>).map((r) => argmax(r.value.probs));
  expect(rerun).toEqual(images.slice(0, 8).map((_, i) => argmax(reference[i])));
  expect(engine.stats().retriedBatches).toBe(before.retriedBatches + 1);
  await healed(before.replacedWorkers, 1);
  expect(await Promise.all(engine.infer(images.slice(0, 16)))).toHaveLength(16);
  expect(logs.held).toEqual(['inference worker died mid-batch; running the batch again']);
});

test('fault patterns: crashOnce is survived by the rerun; crashAlways fails alone (WorkerCrashedError), the images sharing its batch are answered', async () => {
  logs = expectLogs(WORKER_DEATH);
  const size = engine.imageSize;
  const before = engine.stats();
  const once = await Promise.all(engine.infer([faultPixels('crashOnce', size), ...images.slice(0, 7)]));
  expect(once.slice(1).map((o) => argmax(o.probs))).toEqual(images.slice(0, 7).map((_, i) => argmax(reference[i])));
  expect(engine.stats().retriedBatches).toBe(before.retriedBatches + 1);
  await healed(before.replacedWorkers, 1);

  // One batch of eight shared by two callers; the first caller's first image kills every worker that runs it.
  const doomed = Promise.allSettled(engine.infer([faultPixels('crashAlways', size), ...images.slice(0, 3)]));
  const sharing = Promise.allSettled(engine.infer(images.slice(3, 7)));
  const [a, b] = await Promise.all([doomed, sharing]);
  expect(a[0].status === 'rejected' && a[0].reason instanceof WorkerCrashedError).toBe(true);
  const answered = [...a.slice(1), ...b] as Array<PromiseFulfilledResult<{ probs: Float32Array }>>;
  expect(answered.map((r) => r.status)).toEqual(Array(7).fill('fulfilled'));
  expect(answered.map((r) => argmax(r.value.probs))).toEqual(images.slice(0, 7).map((_, i) => argmax(reference[i])));
  expect(engine.stats().retriedBatches).toBe(before.retriedBatches + 2);
  expect(engine.stats().batches).toBe(before.batches + 2); // the two callers shared one batch
  // The batch's first run, its rerun, and the killer run alone: three deaths (plus crashOnce's one).
  await healed(before.replacedWorkers, 4);

  // Alone in its batch, the killer costs two deaths: the rerun already ran it alone.
  const alone = await Promise.allSettled(engine.infer([faultPixels('crashAlways', size)]));
  expect(alone[0].status === 'rejected' && alone[0].reason instanceof WorkerCrashedError).toBe(true);
  await healed(before.replacedWorkers, 6);
  expect(await Promise.all(engine.infer(images.slice(0, 16)))).toHaveLength(16);
  // One warning per batch that lost a worker, and one per rerun that died too.
  expect(logs.held.length).toBeGreaterThanOrEqual(3);
});

test('a run still waiting for a worker when its deadline passes is not run', async () => {
  const size = engine.imageSize;
  const batch = (n: number) => {
    const pixels = new Float32Array(n * size);
    for (let i = 0; i < n; i++) pixels.set(images[i % images.length], i * size);
    return pixels;
  };
  // Both workers busy with large batches; a third run queues behind them with 1 ms to live.
  const busy = [engine.pool.run(batch(64), 64), engine.pool.run(batch(64), 64)];
  const late = engine.pool.run(batch(1), 1, 1, performance.now() + 1);
  await expect(late).rejects.toBeInstanceOf(DeadlineExceededError);
  expect((await Promise.all(busy)).map((o) => o.count)).toEqual([64, 64]);
  // A run whose deadline is still ahead is run.
  expect((await engine.pool.run(batch(1), 1, 1, performance.now() + 60_000)).count).toBe(1);
});

test('the pool reports its workers’ live tensors with every batch, as the workers count them', async () => {
  await Promise.all(engine.infer(images.slice(0, 16)));
  await Promise.all(engine.infer(images.slice(0, 16))); // both workers have answered a batch since any restart
  const reported = engine.pool.tensorStats();
  const asked = await engine.pool.liveTensors();
  expect(reported.numTensors).toBe(asked.reduce((a, b) => a + b, 0));
  expect(reported.numTensors).toBeGreaterThan(0);
  // At least the weights (weights.bin, float32) in each of the two workers.
  expect(reported.numBytes).toBeGreaterThanOrEqual(2 * 1_686_568);
});

test('images of the wrong size are refused before they reach a worker', () => {
  expect(() => engine.infer([new Float32Array(10)])).toThrow(/image 0 has 10 values; the model takes 28×28×1 = 784/);
});

test('live tensors stay constant over thousands of batches', async () => {
  // No delay and batches of at most 4: eight callers a wave make about four batches.
  const e = await Engine.start({
    modelDir: BUNDLED_MODEL_DIR,
    backend: 'wasm',
    workers: 2,
    maxBatch: 4,
    maxDelayMs: 0,
  });
  try {
    await Promise.all(e.infer(images));
    const before = await e.pool.liveTensors();
    const start = e.stats().batches;
    for (let wave = 0; wave < 600; wave++) {
      const callers = Array.from({ length: 8 }, (_, i) =>
        Promise.all(e.infer(images.slice(i % 5, (i % 5) + 1 + (wave % 3)))),
      );
      await Promise.all(callers);
    }
    expect(e.stats().batches - start).toBeGreaterThanOrEqual(2000);
    expect(await e.pool.liveTensors()).toEqual(before);
  } finally {
    await e.close();
  }
});

test('a full queue answers at once with OverloadError', async () => {
  const small = await Engine.start({
    modelDir: BUNDLED_MODEL_DIR,
    backend: 'wasm',
    workers: 1,
    maxBatch: 4,
    maxDelayMs: 50,
    maxQueue: 6,
  });
  try {
    const first = small.infer(images.slice(0, 4)); // leaves at once (full batch)
    const queued = small.infer(images.slice(4, 10)); // fills the queue while the worker is busy
    expect(() => small.infer([images[0]])).toThrow(OverloadError);
    await Promise.all([...first, ...queued]);
  } finally {
    await small.close();
  }
});

test('with screening extras the workers also return spectral shares, low-pass probabilities and pixels, as in-process', async () => {
  const extras = { hfCutoffs: [0.3, 0.5], lowPass: { radius: 0.4, kind: 'ideal' as const }, lowPassPixels: true };
  const screening = await Engine.start({
    modelDir: BUNDLED_MODEL_DIR,
    backend: 'wasm',
    workers: 1,
    maxBatch: 4,
    extras,
  });
  try {
    await initBackend('wasm');
    const local = await InferenceModel.load(BUNDLED_MODEL_DIR);
    const ref = await local.runBatch(
      images.slice(0, 3).reduce((all, img, i) => (all.set(img, i * 784), all), new Float32Array(3 * 784)),
      3,
      extras,
    );
    const outs = await Promise.all(screening.infer(images.slice(0, 3)));
    outs.forEach((o, i) => {
      expect(o.hfShare).toHaveLength(2);
      expect(o.lowPassProbs).toHaveLength(10);
      expect(o.lowPassPixels).toHaveLength(784);
      o.hfShare!.forEach((v, k) => expect(v).toBeCloseTo(ref.hfShare![i * 2 + k], 5));
      o.lowPassProbs!.forEach((v, k) => expect(v).toBeCloseTo(ref.lowPassProbs![i * 10 + k], 5));
    });
    local.dispose();
  } finally {
    await screening.close();
  }
});
