/**
 * `npm run bench:detect`: screening throughput (classification, every detector and the low-pass
 * defense's second pass) against forward-only throughput at batch 64, in one run so the ratio is
 * comparable; in-process on one thread, and through the engine (its worker pool) as the API runs it.
 * Real test images (the detectors' cost depends on the prediction only through table lookups).
 * Last line: one JSON object. Options (environment): BENCH_SECONDS (default 3), FASHION_MNIST_DIR;
 * `-- --model DIR` measures another model (modelBench below).
 */
import * as fs from 'fs';
import { calibrationPath, loadCalibration } from '../calibration/calibrationFile';
import { loadFashionMnist } from '../data/fashionMnist';
import { initBackend } from '../engine/backends';
import { Engine } from '../engine/engine';
import { BatchExtras, InferenceModel, splitBatch } from '../engine/model';
import { Screener } from '../screening/screener';
import { defaultModelDir } from '../util/paths';
import { printTable, randomImages, rate } from './measure';

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

/**
 * `npm run bench:detect -- --model DIR`: the same ratio for another model (e.g. models/nsfw-mobilenetv2,
 * 224×224×3), at batch 32 (BENCH_BATCH), on random pixels (the cost does not depend on them): the
 * forward pass alone against one with the screening extras (the high-frequency shares at the
 * calibrated cut-off and the low-pass defense's second pass), and each extra apart. With no
 * calibration yet, cut-off 0.5 and an ideal radius of 0.45 stand in (the cost does not depend on them).
 */
async function modelBench(modelDir: string): Promise<void> {
  const backend = await initBackend();
  const model = await InferenceModel.load(modelDir);
  const batchSize = Number(process.env.BENCH_BATCH ?? 32);
  let extras: BatchExtras = { hfCutoffs: [0.5], lowPass: { radius: 0.45, kind: 'ideal' } };
  let source = 'stand-in cut-off 0.5 and radius 0.45 (no calibration.json)';
  if (fs.existsSync(calibrationPath(modelDir))) {
    extras = new Screener(loadCalibration(calibrationPath(modelDir), model.stored.sha256), model.metadata.labels)
      .extras;
    source = 'the calibration’s cut-off and radius';
  }
  const batch = randomImages(batchSize, model.imageSize);
  const timed = (e?: BatchExtras) =>
    rate(batchSize, async () => void (await model.runBatch(batch, batchSize, e)), SECONDS);
  const forward = await timed();
  const screening = await timed(extras);
  const hfOnly = await timed({ hfCutoffs: extras.hfCutoffs });
  const lowPassOnly = await timed({ lowPass: extras.lowPass });
  const ms = (r: number) => 1000 / r;
  const summary = {
    backend: backend.name,
    model: model.metadata.id,
    inputShape: model.inputShape,
    batch: batchSize,
    extras: source,
    forwardImagesPerSec: forward,
    screeningImagesPerSec: screening,
    ratio: screening / forward,
    msPerImage: {
      forward: ms(forward),
      highFrequencyShares: ms(hfOnly) - ms(forward),
      lowPassAndSecondForward: ms(lowPassOnly) - ms(forward),
    },
  };
  const [h, w, c] = model.inputShape;
  printTable(
    `screening vs forward-only, ${model.metadata.id} (${h}×${w}×${c}), batch ${batchSize}, ${backend.name} (goal: ratio ≥ 0.4)`,
    [
      ['forward', `${forward.toFixed(1)} img/s (${ms(forward).toFixed(1)} ms/img)`],
      ['screening', `${screening.toFixed(1)} img/s`],
      ['ratio', (screening / forward).toFixed(3)],
      ['high-frequency shares alone', `+${summary.msPerImage.highFrequencyShares.toFixed(1)} ms/img`],
      ['low-pass + second forward alone', `+${summary.msPerImage.lowPassAndSecondForward.toFixed(1)} ms/img`],
      ['extras', source],
    ],
  );
  process.stdout.write(JSON.stringify(summary) + '\n');
  model.dispose();
}

const modelArg = process.argv.indexOf('--model');
(modelArg >= 0 ? modelBench(process.argv[modelArg + 1]) : main()).then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`bench:detect: ${err.message}\n`);
    process.exit(1);
  },
);
