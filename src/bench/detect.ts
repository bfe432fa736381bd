/**
 * `npm run bench:detect`: screening throughput (classification, every detector and the low-pass
 * defense's second pass) against forward-only throughput at batch 64, in one run so the ratio is
 * comparable; in-process on one thread, and through the engine (its worker pool) as the API runs it.
 * Real test images (the detectors' cost depends on the prediction only through table lookups).
 * Last line: one JSON object. Options (environment): BENCH_SECONDS (default 3), FASHION_MNIST_DIR.
 */
import { calibrationPath, loadCalibration } from '../calibration/calibrationFile';
import { loadFashionMnist } from '../data/fashionMnist';
import { initBackend } from '../engine/backends';
import { Engine } from '../engine/engine';
import { InferenceModel, splitBatch } from '../engine/model';
import { Screener } from '../screening/screener';
import { defaultModelDir } from '../util/paths';
import { printTable, rate } from './measure';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const BATCH = 64;

async function main(): Promise<void> {
  const backend = await initBackend();
  const modelDir = defaultModelDir();
  const model = await InferenceModel.load(modelDir);
  const screener = new Screener(loadCalibration(calibrationPath(modelDir), model.stored.sha256), model.metadata.labels);
  const images = loadFashionMnist('test', process.env.FASHION_MNIST_DIR, 1024);
  const batch = images.pixels.subarray(0, BATCH * model.imageSize);

  const forward = await rate(BATCH, async () => void (await model.runBatch(batch, BATCH)), SECONDS);
  const screening = await rate(
    BATCH,
    async () => {
      for (const out of splitBatch(await model.runBatch(batch, BATCH, screener.extras))) screener.screen(out);
    },
    SECONDS,
  );

  // Through the engine: its workers compute the extras, the main thread scores.
  const all = Array.from({ length: images.count }, (_, i) => images.pixels.subarray(i * 784, (i + 1) * 784));
  const engineRate = async (extras: boolean) => {
    const engine = await Engine.start({ modelDir, maxBatch: BATCH, extras: extras ? screener.extras : undefined });
    const r = await rate(
      images.count,
      async () => {
        const outs = await Promise.all(engine.infer(all));
        if (extras) outs.forEach((o) => screener.screen(o));
      },
      SECONDS,
    );
    const workers = engine.batching.workers;
    await engine.close();
    return { rate: r, workers };
  };
  const engineForward = await engineRate(false);
  const engineScreening = await engineRate(true);

  const summary = {
    backend: backend.name,
    batch: BATCH,
    inProcess: { forwardImagesPerSec: forward, screeningImagesPerSec: screening, ratio: screening / forward },
    engine: {
      workers: engineForward.workers,
      forwardImagesPerSec: engineForward.rate,
      screeningImagesPerSec: engineScreening.rate,
      ratio: engineScreening.rate / engineForward.rate,
    },
  };
  printTable(`screening vs forward-only, batch ${BATCH}, ${backend.name} (goal: ratio ≥ 0.5)`, [
    ['in-process forward', `${forward.toFixed(0)} img/s`],
    ['in-process screening', `${screening.toFixed(0)} img/s`],
    ['in-process ratio', (screening / forward).toFixed(3)],
    [`engine forward (${engineForward.workers} workers)`, `${engineForward.rate.toFixed(0)} img/s`],
    [`engine screening (${engineForward.workers} workers)`, `${engineScreening.rate.toFixed(0)} img/s`],
    ['engine ratio', summary.engine.ratio.toFixed(3)],
  ]);
  process.stdout.write(JSON.stringify(summary) + '\n');
  model.dispose();
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`bench:detect: ${err.message}\n`);
    process.exit(1);
  },
);
