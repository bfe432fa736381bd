/**
 * Screening features computed in this thread, in batches (calibration, evaluation and the CLI):
 * the same InferenceModel.runBatch that the engine's workers run, without a worker round trip.
 */
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
