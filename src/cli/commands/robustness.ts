/**
 * `advsieve robustness [--model DIR]`: a Fashion-MNIST model's accuracy under PGD-L∞ (random start)
 * on the official test images, 1 000 at a time, with each chunk's figure and an exact interval. The
 * figure `train --adversarial` records, measurable again for any model directory (the bundled one, a
 * retrained one, an imported one of the same input shape) without retraining it.
 *
 * `--split train --from N` measures the same on training images: beside the test figure it tells a
 * model that underfits the robust objective (both low) from one that overfits it (train far above).
 */
import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { DEFAULT_FASHION_MNIST_DIR, ImageSet, loadFashionMnist, Split } from '../../data/fashionMnist';
import { describeBackend, initBackend } from '../../engine/backends';
import { loadModelFiles, readMetadata } from '../../engine/modelStore';
import { robustAccuracy, RobustAccuracy, robustChunksText, robustIntervalText } from '../../train/robustAccuracy';
import { defaultModelDir } from '../../util/paths';
import { logger } from '../../util/logger';
import { toJson } from '../json';
import { choiceOption, floatOption, intOption } from '../options';

/** Rates: always written as JSON floats (1 is 1.0). */
const RATE_KEYS = new Set(['clean', 'underAttack', 'rate', 'low', 'high', 'epsilon']);

interface RobustnessOptions {
  model: string;
  data: string;
  images: number;
  split: Split;
  from: number;
  epsilon: number;
  steps: number;
  seed: number;
  chunk: number;
  json?: boolean;
}

export function registerRobustness(program: Command): void {
  program
    .command('robustness')
    .description(
      "a Fashion-MNIST model's accuracy under PGD-L∞ (random start, step 2.5ε/steps, against its logits) on the test images, 1 000 at a time",
    )
    .option('--model <dir>', 'model directory', defaultModelDir())
    .option('--data <dir>', 'Fashion-MNIST directory', DEFAULT_FASHION_MNIST_DIR)
    .option('--images <n>', 'N images of the split, from --from on (default: all 10 000 test images)', intOption, 10000)
    .option(
      '--split <name>',
      "the images: 'test', or 'train' (to compare: a robust model that overfits does far better on it)",
      choiceOption(['test', 'train'] as const),
      'test',
    )
    .option('--from <n>', "skip the split's first N images", intOption, 0)
    .option('--epsilon <x>', 'L∞ radius', floatOption, 0.1)
    .option('--steps <n>', 'PGD iterations', intOption, 40)
    .option('--seed <n>', "random start of the first chunk (the next chunk's is seed + 1, …)", intOption, 1)
    .option('--chunk <n>', 'images attacked at once (memory)', intOption, 1000)
    .option('--json', 'print the result as one JSON object')
    .action(async (opts: RobustnessOptions) => {
      const result = await measureRobustness(opts);
      process.stdout.write(opts.json ? `${toJson(result, RATE_KEYS)}\n` : describeRobustness(result));
    });
}

/** What was measured, and on which images: `split` images `from` … `from + images − 1`. */
export type RobustnessResult = RobustAccuracy & { model: string; split: Split; from: number };

/** Images from … from + count − 1 of `set` (fewer at its end); refuses a start past it. */
function imagesFrom(set: ImageSet, split: Split, from: number, count: number): ImageSet {
  if (!(Number.isInteger(from) && from >= 0 && from < set.count))
    throw new RangeError(`--from ${from}: the ${split} split has ${set.count} images (0 … ${set.count - 1})`);
  const n = Math.min(count, set.count - from);
  const size = set.height * set.width;
  return {
    ...set,
    count: n,
    pixels: set.pixels.subarray(from * size, (from + n) * size),
    labels: set.labels.subarray(from, from + n),
  };
}

export async function measureRobustness(opts: RobustnessOptions): Promise<RobustnessResult> {
  const backend = await initBackend();
  logger.info({ backend: backend.name }, describeBackend(backend));
  const metadata = readMetadata(opts.model);
  const [h, w, c] = metadata.inputShape;
  if (h !== 28 || w !== 28 || c !== 1) {
    throw new Error(
      `${opts.model} takes ${h}×${w}×${c} images; robustness measures Fashion-MNIST models (28×28×1) on its test set`,
    );
  }
  const { model } = await loadModelFiles(opts.model);
  if (!(model instanceof tf.LayersModel)) throw new Error(`${opts.model}: a graph model has no logits layer to attack`);
  const { split, from } = opts;
  try {
    const images = imagesFrom(loadFashionMnist(split, opts.data), split, from, opts.images);
    const result = await robustAccuracy(model, images, {
      count: images.count,
      epsilon: opts.epsilon,
      steps: opts.steps,
      seed: opts.seed,
      chunk: opts.chunk,
      logitsLayer: metadata.logitsLayer,
    });
    // Chunks by their index in the split, not in the slice.
    const chunks = result.chunks.map((c) => ({ ...c, from: c.from + from }));
    return { model: opts.model, split, from, ...result, chunks };
  } finally {
    model.dispose();
  }
}

export function describeRobustness(r: RobustnessResult): string {
  const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
  const kind = r.split === 'train' ? 'training' : 'test';
  const which =
    r.from === 0 ? `the first ${r.images} ${kind} images` : `${kind} images ${r.from}–${r.from + r.images - 1}`;
  const lines = [
    `${r.model}: under PGD-${r.steps} (L∞ ε ${r.epsilon}, random start) ${pct(r.underAttack)} of ${which}` +
      ` (95 % ${robustIntervalText(r)}); clean ${pct(r.clean)}; ${r.seconds.toFixed(0)} s`,
  ];
  if (r.chunks.length > 1) lines.push(`per ${r.chunks[0].images} images: ${robustChunksText(r)}`);
  return `${lines.join('\n')}\n`;
}
