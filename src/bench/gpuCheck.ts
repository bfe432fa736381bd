/**
 * The GPU check run on a lent GPU machine (the `check` stage of scripts/gpu-check.sh, docs/gpu.md):
 * the adapter (it must be a hardware GPU, not a software rasteriser), WebGPU forward images/s at
 * batch 64, 256 and 1 024 and input-gradient images/s, then the wasm backend on the same machine's
 * CPU (one thread) in the same run. Last line: one JSON object.
 *
 *   node dist/bench/gpuCheck.js [--allow-software] [--seconds N]
 */
import * as os from 'os';
import { initBackend } from '../engine/backends';
import { InferenceModel } from '../engine/model';
import { defaultModelDir } from '../util/paths';
import * as tf from '@tensorflow/tfjs';
import { printTable, randomImages, rate } from './measure';
import { measureWebGpu } from './webgpu';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const allowSoftware = args.includes('--allow-software');
  const i = args.indexOf('--seconds');
  const seconds = i >= 0 ? Number(args[i + 1]) : 3;
  const modelDir = defaultModelDir();
  await initBackend('wasm');
  const gpu = await measureWebGpu(modelDir, [64, 256, 1024], [64, 256], seconds, allowSoftware);
  const a = gpu.adapter;

  const model = await InferenceModel.load(modelDir);
  const [h, w, c] = model.inputShape;
  const px = randomImages(64, model.imageSize);
  const wasmForward64 = await rate(
    64,
    async () => {
      await model.runBatch(px, 64);
    },
    seconds,
  );
  const x = tf.tensor4d(px, [64, h, w, c]);
  const labels = new Int32Array(64).map((_, k) => k % 10);
  const wasmInputGradient64 = await rate(
    64,
    async () => {
      const g = model.inputGradient(x, labels);
      await g.data();
      g.dispose();
    },
    seconds,
  );

  const rows: [string, string][] = [
    ['adapter', `${a.vendor} / ${a.architecture} / ${a.device}${a.software ? ' (SOFTWARE)' : ''}`],
    ['adapter description', a.description],
    ...Object.entries(gpu.forward).map(
      ([b, v]) => [`webgpu forward, batch ${b}`, `${v.toFixed(0)} img/s`] as [string, string],
    ),
    ...Object.entries(gpu.inputGradient).map(
      ([b, v]) => [`webgpu input gradient, batch ${b}`, `${v.toFixed(0)} img/s`] as [string, string],
    ),
    ['wasm forward, batch 64 (1 CPU thread)', `${wasmForward64.toFixed(0)} img/s`],
    ['wasm input gradient, batch 64 (1 CPU thread)', `${wasmInputGradient64.toFixed(0)} img/s`],
  ];
  printTable(
    `advsieve GPU check — ${new Date().toISOString()} — ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, node ${process.version}`,
    rows,
  );
  const round = (o: Record<number, number>) =>
    Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v)]));
  process.stdout.write(
    JSON.stringify({
      date: new Date().toISOString(),
      adapter: a,
      cpu: os.cpus()[0]?.model,
      cores: os.cpus().length,
      webgpuForward: round(gpu.forward),
      webgpuInputGradient: round(gpu.inputGradient),
      wasmForward64: Math.round(wasmForward64),
      wasmInputGradient64: Math.round(wasmInputGradient64),
    }) + '\n',
  );
}

main()
  .then(() => process.exit(0))
  .catch((err: Error) => {
    process.stderr.write(`gpu-check: ${err.message}\n`);
    process.exit(1);
  });
