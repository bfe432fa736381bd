/**
 * Thresholds read on clean images the model was not trained on. A calibration's detectors are fitted
 * on training images; its thresholds are only as good as the clean scores they are read from, and
 * on images the model was trained on those scores are lower (the model is surer there) than on any
 * image it will screen: set for 5 % on training images, the reference model's flagged 7.1 % of test
 * images. Here every detector scores the given clean images with the calibration's fitted states,
 * and their sorted scores replace the calibration's `holdoutScores`, from which the screener reads
 * a split-conformal threshold at any rate (./conformal.ts). Nothing fitted changes.
 */
import { argmax } from '../detectors/detector';
import type { InferenceModel } from '../engine/model';
import { runInBatches } from '../screening/inProcess';
import { Screener } from '../screening/screener';
import type { Calibration, ThresholdRecord } from './calibrationFile';

export interface ThresholdImages {
  readonly pixels: Float32Array;
  readonly count: number;
  readonly source: string;
  /** Set when they are a part of Fashion-MNIST's test split (evaluate then leaves it out). */
  readonly testPart?: ThresholdRecord['testPart'];
}

/** Images scored at a time: an image's activations are dropped once it is scored. */
const CHUNK = 512;

/** Every detector's (and the combined) score of each image, in the screener's `detectorNames` order. */
export async function cleanScores(
  model: InferenceModel,
  screener: Screener,
  pixels: Float32Array,
  count: number,
  onProgress?: (done: number, total: number) => void,
): Promise<{ scores: number[][]; predicted: Int32Array }> {
  const size = model.imageSize;
  const scores: number[][] = [];
  const predicted = new Int32Array(count);
  for (let start = 0; start < count; start += CHUNK) {
    const n = Math.min(CHUNK, count - start);
    const outputs = await runInBatches(model, pixels.subarray(start * size, (start + n) * size), n, screener.extras);
    outputs.forEach((o, k) => {
      scores.push(screener.scores(screener.features(o)));
      predicted[start + k] = argmax(o.probs);
    });
    onProgress?.(start + n, count);
  }
  return { scores, predicted };
}

/** Scores ascending, at 7 significant digits (the calibration file's precision). */
export const sortedAscending = (values: number[]): number[] =>
  Array.from(
    Float64Array.from(values)
      .sort()
      .map((v) => Number(v.toPrecision(7))),
  );

export async function readThresholds(
  model: InferenceModel,
  calibration: Calibration,
  images: ThresholdImages,
  onProgress?: (done: number, total: number) => void,
): Promise<Calibration> {
  if (images.count < 20) {
    throw new RangeError(`thresholds need at least 20 clean images (${images.count} in ${images.source})`);
  }
  const screener = new Screener(calibration, model.metadata.labels);
  const { scores } = await cleanScores(model, screener, images.pixels, images.count, onProgress);
  const holdoutScores = Object.fromEntries(
    screener.detectorNames.map((name, k) => {
      const column = scores.map((row) => row[k]);
      const nan = column.filter(Number.isNaN).length;
      if (nan > 0)
        throw new Error(`${name} scored ${nan} of the threshold images NaN: its fitted statistics are not usable`);
      return [name, sortedAscending(column)];
    }),
  );
  const thresholds: ThresholdRecord = {
    source: images.source,
    images: images.count,
    ...(images.testPart ? { testPart: images.testPart } : {}),
    readAt: new Date().toISOString(),
  };
  return {
    ...calibration,
    data: { ...calibration.data, thresholdImages: images.count, thresholds },
    holdoutScores,
  };
}
