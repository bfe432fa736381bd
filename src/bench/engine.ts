/**
 * `npm run bench:engine`: throughput of the inference engine on this machine, as a table and, as
 * the last line, one JSON object. All figures come from one run, so ratios are comparable:
 * forward images/s of the reference model per batch size (one thread, in-process), the cpu
 * backend at batch 64, the worker pool with 1 and 2 workers (through the batcher), input gradients
 * at batch 64 with advsieve's kernels and with tfjs-wasm's stock ones, and training samples/s.
 *
 * Options (environment): BENCH_SECONDS (per measurement, default 3), FASHION_MNIST_DIR;
 * `-- --model DIR` measures another model (modelBench below).
 */
import * as tf from '@tensorflow/tfjs';
import * as os from 'os';
import { DEFAULT_FASHION_MNIST_DIR } from '../data/fashionMnist';
import { initBackend, softwareAdapterAllowed } from '../engine/backends';
import { Engine } from '../engine/engine';
import { useStockWasmKernels } from '../engine/kernels/wasm/register';
import { InferenceModel } from '../engine/model';
import { train } from '../train/trainer';
import { defaultModelDir } from '../util/paths';
import { printTable, randomImages, rate as measure } from './measure';
import { measureWebGpu, WebGpuFigures } from './webgpu';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const DATA = process.env.FASHION_MNIST_DIR ?? DEFAULT_FASHION_MNIST_DIR;
const rate = (perStep: number, step: () => void | Promise<void>) => measure(perStep, step, SECONDS);

async function poolRate(backend: string, workers: number, size: number): Promise<number> {
  const engine = await Engine.start({
    backend,
    modelDir: defaultModelDir(),
    workers,
    maxBatch: 64,
    maxDelayMs: 5,
    maxQueue: 4096,
  });
  try {
    const images = Array.from({ length: 512 }, () => randomImages(1, size));
    // 16 callers of 32 images keep every worker fed with full batches.
    return await rate(512, async () => {
      await Promise.all(
        Array.from({ length: 16 }, (_, c) => Promise.all(engine.infer(images.slice(c * 32, (c + 1) * 32)))),
      );
    });
  } finally {
    await engine.close();
  }
}

async function main(): Promise<void> {
  const backend = await initBackend(process.env.ADVSIEVE_BACKEND ?? 'wasm');
  const model = await InferenceModel.load(defaultModelDir());
  const size = model.imageSize;
  const [h, w, c] = model.inputShape;
  const rows: [string, string][] = [];
  const forward: Record<number, number> = {};
  for (const batch of [1, 8, 32, 64, 128]) {
    const px = randomImages(batch, size);
    forward[batch] = await rate(batch, async () => {
      await model.runBatch(px, batch);
    });
    rows.push([`forward, batch ${batch} (${backend.name}, 1 thread)`, `${forward[batch].toFixed(0)} img/s`]);
  }

  const x64 = tf.tensor4d(randomImages(64, size), [64, h, w, c]);
  const labels = new Int32Array(64).map((_, i) => i % model.metadata.labels.length);
  const gradStep = async () => {
    const g = model.inputGradient(x64, labels);
    await g.data();
    g.dispose();
  };
  const inputGradient64 = await rate(64, gradStep);
  rows.push(['input gradient, batch 64 (advsieve kernels)', `${inputGradient64.toFixed(0)} img/s`]);
  let inputGradientStock64: number | null = null;
  if (backend.name === 'wasm') {
    useStockWasmKernels(true);
    inputGradientStock64 = await rate(64, gradStep);
    useStockWasmKernels(false);
    rows.push(['input gradient, batch 64 (stock tfjs-wasm kernels)', `${inputGradientStock64.toFixed(0)} img/s`]);
  }
  x64.dispose();

  await import('@tensorflow/tfjs-backend-cpu');
  await tf.setBackend('cpu');
  const cpuModel = await InferenceModel.load(defaultModelDir());
  const px64 = randomImages(64, size);
  const forwardCpu64 = await rate(64, async () => {
    await cpuModel.runBatch(px64, 64);
  });
  rows.push(['forward, batch 64 (cpu backend)', `${forwardCpu64.toFixed(0)} img/s`]);
  cpuModel.dispose();
  await tf.setBackend(backend.tfjsName);

  const round = (o: Record<number, number>) =>
    Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v)]));
  const pool: Record<number, number> = {};
  for (const workers of [1, 2]) {
    pool[workers] = await poolRate(backend.name, workers, size);
    rows.push([`pool of ${workers} worker(s), batches of 64`, `${pool[workers].toFixed(0)} img/s`]);
  }

  const trainRate = async (workers: number) =>
    (
      await train({
        dataDir: DATA,
        epochs: 1,
        batchSize: 128,
        learningRate: 1e-3,
        lrDecay: 1,
        seed: 1,
        workers,
        limit: 128 * 30,
        backend: backend.name,
      })
    ).samplesPerSec;
  const trainSamplesPerSecOneWorker = await trainRate(1);
  const trainSamplesPerSec = await trainRate(2);
  rows.push(['training, 1 thread (batch 128)', `${trainSamplesPerSecOneWorker.toFixed(0)} samples/s`]);
  rows.push(['training, 2 data-parallel workers (batch 128)', `${trainSamplesPerSec.toFixed(0)} samples/s`]);

  // WebGPU rows when an adapter is present (a software one only with ADVSIEVE_WEBGPU_ALLOW_SOFTWARE=1).
  let webgpu:
    | (Omit<WebGpuFigures, 'forward' | 'inputGradient'> & { forward: Record<string, number>; inputGradient64: number })
    | null = null;
  let webgpuAbsent = '';
  try {
    const g = await measureWebGpu(defaultModelDir(), [64, 256], [64], SECONDS, softwareAdapterAllowed());
    const a = g.adapter;
    rows.push([`webgpu adapter`, `${a.vendor}/${a.architecture}/${a.device}${a.software ? ' (software)' : ''}`]);
    for (const [b, v] of Object.entries(g.forward))
      rows.push([`forward, batch ${b} (webgpu)`, `${v.toFixed(0)} img/s`]);
    rows.push(['input gradient, batch 64 (webgpu)', `${g.inputGradient[64].toFixed(0)} img/s`]);
    webgpu = { adapter: a, forward: round(g.forward), inputGradient64: Math.round(g.inputGradient[64]) };
  } catch (err) {
    webgpuAbsent = (err as Error).message;
    rows.push(['webgpu', `not measured: ${webgpuAbsent}`]);
  }

  printTable(
    `advsieve engine benchmark — ${os.cpus().length} cores, ${os.cpus()[0]?.model ?? ''}, node ${process.version}`,
    rows,
  );
  const summary = {
    backend: backend.name,
    forward: round(forward),
    forwardCpu64: Math.round(forwardCpu64),
    pool: round(pool),
    poolSpeedup: Number((pool[2] / pool[1]).toFixed(2)),
    inputGradient64: Math.round(inputGradient64),
    inputGradientStock64: inputGradientStock64 === null ? null : Math.round(inputGradientStock64),
    trainSamplesPerSec: Math.round(trainSamplesPerSec),
    trainSamplesPerSecOneWorker: Math.round(trainSamplesPerSecOneWorker),
    webgpu,
    ...(webgpu ? {} : { webgpuAbsent }),
  };
  process.stdout.write(JSON.stringify(summary) + '\n');
  model.dispose();
}

/**
 * `npm run bench:engine -- --model DIR`: another model's forward and input-gradient throughput at
 * batch 16 (BENCH_BATCH), one thread, in one run. The gradient runs in chunks of at most
 * BENCH_GRADIENT_CHUNK images (default 8): on wasm a MobileNetV2 gradient of 16 images at 224×224
 * needed more than the 4 GiB a wasm heap can hold ("memory access out of bounds"); now that the
 * tape keeps no copies and no eager batch-norm terms it needs ~3.5 GiB, too near the limit for a
 * default. `--profile` also lists the kernels of one chunk's gradient by total time (tf.profile).
 */
async function modelBench(modelDir: string): Promise<void> {
  const backend = await initBackend(process.env.ADVSIEVE_BACKEND ?? 'wasm');
  const model = await InferenceModel.load(modelDir);
  const batch = Number(process.env.BENCH_BATCH ?? 16);
  const chunk = Math.min(batch, Number(process.env.BENCH_GRADIENT_CHUNK ?? 8));
  const [h, w, c] = model.inputShape;
  const px = randomImages(batch, model.imageSize);
  const forward = await rate(batch, async () => void (await model.runBatch(px, batch)));
  const chunks = Array.from({ length: Math.ceil(batch / chunk) }, (_, i) => {
    const count = Math.min(chunk, batch - i * chunk);
    const x = tf.tensor4d(px.subarray(i * chunk * model.imageSize, (i * chunk + count) * model.imageSize), [
      count,
      h,
      w,
      c,
    ]);
    return { x, labels: new Int32Array(count).map((_, j) => j % model.metadata.labels.length) };
  });
  const gradient = await rate(batch, async () => {
    for (const { x, labels } of chunks) {
      const g = model.inputGradient(x, labels);
      await g.data();
      g.dispose();
    }
  });
  if (process.argv.includes('--profile')) await printGradientProfile(model, chunks[0].x, chunks[0].labels);
  tf.dispose(chunks.map((k) => k.x));
  const summary = {
    backend: backend.name,
    model: model.metadata.id,
    inputShape: model.inputShape,
    batch,
    gradientChunk: chunk,
    forwardImagesPerSec: forward,
    inputGradientImagesPerSec: gradient,
    ratio: gradient / forward,
  };
  printTable(
    `${model.metadata.id} (${h}×${w}×${c}) on ${backend.name}, 1 thread, batch ${batch} (goal: gradient ≥ 0.2× forward)`,
    [
      ['forward', `${forward.toFixed(2)} img/s`],
      [`input gradient (chunks of ${chunk})`, `${gradient.toFixed(2)} img/s`],
      ['ratio', (gradient / forward).toFixed(3)],
    ],
  );
  process.stdout.write(JSON.stringify(summary) + '\n');
  model.dispose();
}

/** The kernels of one input gradient by total time, the 20 costliest (nested ones counted apart). */
async function printGradientProfile(model: InferenceModel, x: tf.Tensor4D, labels: Int32Array): Promise<void> {
  const profile = await tf.profile(async () => {
    const g = model.inputGradient(x, labels);
    await g.data();
    g.dispose();
  });
  const byKernel = new Map<string, { calls: number; ms: number }>();
  for (const k of profile.kernels) {
    const entry = byKernel.get(k.name) ?? { calls: 0, ms: 0 };
    entry.calls++;
    entry.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    byKernel.set(k.name, entry);
  }
  const total = [...byKernel.values()].reduce((sum, e) => sum + e.ms, 0);
  const rows = [...byKernel.entries()]
    .sort((a, b) => b[1].ms - a[1].ms)
    .slice(0, 20)
    .map(([name, e]): [string, string] => [
      `${name} ×${e.calls}`,
      `${e.ms.toFixed(0)} ms (${((100 * e.ms) / total).toFixed(1)}%)`,
    ]);
  printTable(`input gradient of ${x.shape[0]} images, kernels by total time (${total.toFixed(0)} ms)`, rows);
}

const modelArg = process.argv.indexOf('--model');
(modelArg >= 0 ? modelBench(process.argv[modelArg + 1]) : main())
  .then(() => process.exit(0))
  .catch((err: Error) => {
    process.stderr.write(`bench:engine: ${err.stack ?? err.message}\n`);
    process.exit(1);
  });
