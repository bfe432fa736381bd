/**
 * Screening features computed in this thread, in batches (calibration, evaluation and the CLI):
 * the same InferenceModel.runBatch that the engine's workers run, without a worker round trip.
 */
import * as tf from '@tensorflow/tfjs';
import type { Defense } from '../defenses/defense';
import type { BatchExtras, ImageOutput, InferenceModel } from '../engine/model';
import { splitBatch } from '../engine/model';

export const IN_PROCESS_BATCH = 64;

/** Runs `count` images (count × H×W×C values) through the model in batches; one output per image. */
export async function runInBatches(
  model: InferenceModel,
  pixels: Float32Array,
  count: number,
  extras: BatchExtras = {},
  onBatch?: (done: number) => void,
): Promise<ImageOutput[]> {
  const size = model.imageSize;
  const outputs: ImageOutput[] = [];
  for (let start = 0; start < count; start += IN_PROCESS_BATCH) {
    const n = Math.min(IN_PROCESS_BATCH, count - start);
    const out = await model.runBatch(pixels.subarray(start * size, (start + n) * size), n, extras);
    outputs.push(...splitBatch(out));
    onBatch?.(start + n);
  }
  return outputs;
}

/**
 * Class probabilities only, one row per image, of the images or (with `defense`) of their defended
 * versions: one forward pass per image, for the measures that need no activations or extras.
 */
export async function probabilitiesInBatches(
  model: InferenceModel,
  pixels: Float32Array,
  count: number,
  defense?: Defense,
  onBatch?: (done: number) => void,
): Promise<Float32Array[]> {
  const shape = model.inputShape;
  const size = model.imageSize;
  const out: Float32Array[] = [];
  for (let start = 0; start < count; start += IN_PROCESS_BATCH) {
    const n = Math.min(IN_PROCESS_BATCH, count - start);
    const x = tf.tensor4d(pixels.subarray(start * size, (start + n) * size), [n, ...shape]);
    const y = defense ? await defense.apply(x) : x;
    const p = model.probabilities(y);
    const data = (await p.data()) as Float32Array;
    const k = p.shape[1];
    for (let i = 0; i < n; i++) out.push(data.slice(i * k, (i + 1) * k));
    tf.dispose([x, y, p]);
    onBatch?.(start + n);
  }
  return out;
}
