/**
 * The clean false-positive rate on images no threshold was read on, with its exact 95 % interval,
 * at the calibration's rate and at 1 % — what an operator's budget of false alarms becomes on new
 * images. Beside it, the split-conformal rate the thresholds promise (src/calibration/conformal.ts):
 * when the measured interval misses the promise, the evaluation images are not like the threshold
 * images (the thresholds were read on training images, or on another kind of picture).
 *
 * Cross-fitted: the calibration's threshold images are scored already (its holdoutScores), so the
 * roles can be swapped: thresholds read on the evaluation images, applied to the threshold images.
 * Pooled with the deployed direction, every image of both parts (all 10 000 Fashion-MNIST test
 * images) is counted once, each against thresholds read without it.
 */
import { clopperPearson, conformalThreshold, deployedFprInterval, RateInterval } from '../calibration/conformal';
import { cleanScores } from '../calibration/thresholds';
import type { InferenceModel } from '../engine/model';
import type { Screener } from '../screening/screener';

export interface FalsePositiveRow {
  readonly target: number;
  readonly detector: string;
  /** The deployed threshold (read on the calibration's threshold images). */
  readonly threshold: number;
  readonly flagged: number;
  readonly images: number;
  readonly measured: RateInterval;
  /** What the split-conformal rule promises on images like the threshold images. */
  readonly promised: RateInterval;
  /** Both directions pooled (absent when the threshold images are not in the calibration). */
  readonly crossFitted?: RateInterval & { readonly flagged: number; readonly images: number };
}

export interface FalsePositiveReport {
  /** The clean images counted, in words. */
  readonly source: string;
  readonly images: number;
  /** Where the thresholds were read, in words, and on how many images. */
  readonly thresholdSource: string;
  readonly thresholdImages: number;
  readonly rows: FalsePositiveRow[];
}

const countAbove = (scores: ArrayLike<number>, threshold: number) => {
  let n = 0;
  for (let i = 0; i < scores.length; i++) if (scores[i] > threshold) n++;
  return n;
};

export async function cleanFalsePositives(
  model: InferenceModel,
  screener: Screener,
  images: { pixels: Float32Array; count: number; source: string },
  targets: readonly number[],
  onProgress?: (done: number, total: number) => void,
): Promise<FalsePositiveReport> {
  const { calibration } = screener;
  const { scores } = await cleanScores(model, screener, images.pixels, images.count, onProgress);
  // Read on training images, thresholds cannot be cross-fitted: those images are not test images.
  const crossFit = calibration.data.thresholds !== undefined;
  const rows: FalsePositiveRow[] = [];
  for (const target of targets) {
    const thresholds = screener.thresholds(target);
    screener.detectorNames.forEach((detector, k) => {
      const column = scores.map((row) => row[k]);
      const flagged = countAbove(column, thresholds[detector]);
      const thresholdScores = calibration.holdoutScores[detector];
      let crossFitted: FalsePositiveRow['crossFitted'];
      if (crossFit) {
        const swapped = countAbove(thresholdScores, conformalThreshold(column, target));
        const pooled = clopperPearson(flagged + swapped, images.count + thresholdScores.length);
        crossFitted = { ...pooled, flagged: flagged + swapped, images: images.count + thresholdScores.length };
      }
      rows.push({
        target,
        detector,
        threshold: thresholds[detector],
        flagged,
        images: images.count,
        measured: clopperPearson(flagged, images.count),
        promised: deployedFprInterval(thresholdScores.length, target),
        ...(crossFitted ? { crossFitted } : {}),
      });
    });
  }
  return {
    source: images.source,
    images: images.count,
    thresholdSource:
      calibration.data.thresholds?.source ??
      `${calibration.data.source}, second half of the hold-out (training images)`,
    thresholdImages: calibration.data.thresholdImages,
    rows,
  };
}
