/**
 * Screening one image: its prediction, every detector's score against its threshold, the combined
 * verdict and (on request) the low-pass defense's prediction. Thresholds are read from the clean
 * hold-out scores of calibration at the false-positive rate the caller asks for, so a client sees
 * why an image was flagged and can trade false alarms for detections per request. The CLI and the
 * API both call this; they differ only in where the features are computed (in-process or engine).
 */
import { Calibration } from '../calibration/calibrationFile';
import { combinedScore } from '../detectors/combined';
import { channelMahalanobisLayer } from '../detectors/channelMahalanobis';
import { argmax, Detector, ImageFeatures, toFeatures } from '../detectors/detector';
import { COMBINED, screeningDetectors } from '../detectors/registry';
import { trajectory, TrajectoryStep } from '../detectors/classExpectations';
import type { ActivationDistanceState } from '../detectors/activationDistance';
import type { BatchExtras, ImageOutput } from '../engine/model';
import { conformalThreshold } from '../calibration/conformal';

export interface ClassScore {
  readonly label: string;
  readonly classIndex: number;
  readonly score: number;
}

export interface Prediction {
  readonly label: string;
  readonly classIndex: number;
  readonly confidence: number;
  readonly top: ClassScore[];
}

export interface DetectorScore {
  readonly name: string;
  readonly score: number;
  readonly threshold: number;
  readonly flagged: boolean;
}

export interface Detection {
  readonly adversarial: boolean;
  /** The combined score and its threshold. */
  readonly score: number;
  readonly threshold: number;
  readonly targetFpr: number;
  readonly detectors: DetectorScore[];
}

export interface ScreenOutcome {
  readonly prediction: Prediction;
  readonly detection: Detection;
  /** The low-pass defense's prediction (always computed: the disagreement detector needs it). */
  readonly defense: { readonly radius: number; readonly kind: string; readonly prediction: Prediction };
}

/** The k most probable classes, most probable first. */
export function topK(probs: ArrayLike<number>, labels: readonly string[], k: number): ClassScore[] {
  return Array.from(probs, (score, classIndex) => ({ label: labels[classIndex], classIndex, score }))
    .sort((a, b) => b.score - a.score)
    .slice(0, k);
}

export function prediction(probs: ArrayLike<number>, labels: readonly string[], k = 3): Prediction {
  const top = topK(probs, labels, Math.max(1, k));
  return { label: top[0].label, classIndex: top[0].classIndex, confidence: top[0].score, top };
}

export class Screener {
  readonly detectors: Detector[];
  /** What the engine must compute with each batch for these detectors and the defense. */
  readonly extras: BatchExtras;
  /** Every detector's name, then 'combined': the order of scores(). */
  readonly detectorNames: readonly string[];
  /** For each input of the combined verdict (calibration.combined.detectors), its index in `detectors`. */
  readonly combinedInputs: readonly number[];
  private readonly thresholdCache = new Map<number, Record<string, number>>();

  constructor(
    readonly calibration: Calibration,
    readonly labels: readonly string[],
  ) {
    // An optional detector the calibration has no state for is left out, not an error: calibrations
    // made without `--deep-knn` (the bundled ones, older files) have no deep k-NN state.
    const channelLayers = Object.keys(calibration.detectors).flatMap((name) => channelMahalanobisLayer(name) ?? []);
    this.detectors = screeningDetectors(calibration.hiddenLayer, true, channelLayers).filter((d) => {
      if (d.name in calibration.detectors) return true;
      if (d.optional) return false;
      throw new Error(`calibration has no state for detector '${d.name}'`);
    });
    this.detectorNames = [...this.detectors.map((d) => d.name), COMBINED];
    // The verdict reads the detectors it was fitted on, by name: a calibration may score a detector
    // that its combined regression leaves out.
    this.combinedInputs = calibration.combined.detectors.map((name) => {
      const k = this.detectors.findIndex((d) => d.name === name);
      if (k < 0)
        throw new Error(`the combined verdict reads detector '${name}', which the calibration has no state for`);
      return k;
    });
    const hf = calibration.detectors.highFrequency as { cutoff: number };
    this.extras = {
      hfCutoffs: [hf.cutoff],
      lowPass: { radius: calibration.lowPass.radius, kind: calibration.lowPass.kind },
    };
  }

  /**
   * Threshold of every detector (and 'combined') at a target false-positive rate, by the split-
   * conformal rule over the calibration's clean threshold images (src/calibration/conformal.ts).
   */
  thresholds(targetFpr = this.calibration.defaultTargetFpr): Record<string, number> {
    if (!(targetFpr > 0 && targetFpr < 1)) throw new RangeError(`targetFpr must be in (0, 1), got ${targetFpr}`);
    let t = this.thresholdCache.get(targetFpr);
    if (!t) {
      t = Object.fromEntries(
        Object.entries(this.calibration.holdoutScores).map(([name, scores]) => [
          name,
          conformalThreshold(scores, targetFpr),
        ]),
      );
      this.thresholdCache.set(targetFpr, t);
    }
    return t;
  }

  /** Every detector's score, then the combined score, in `detectorNames` order. */
  scores(f: ImageFeatures): number[] {
    const s = this.detectors.map((d) => d.score(this.calibration.detectors[d.name], f));
    return [
      ...s,
      combinedScore(
        this.calibration.combined,
        this.combinedInputs.map((k) => s[k]),
      ),
    ];
  }

  features(out: ImageOutput): ImageFeatures {
    return toFeatures(out, this.extras.hfCutoffs!);
  }

  screen(out: ImageOutput, options: { targetFpr?: number; top?: number } = {}): ScreenOutcome {
    const targetFpr = options.targetFpr ?? this.calibration.defaultTargetFpr;
    const thresholds = this.thresholds(targetFpr);
    const scores = this.scores(this.features(out));
    const detectors = this.detectorNames.map((name, i) => ({
      name,
      score: scores[i],
      threshold: thresholds[name],
      flagged: scores[i] > thresholds[name],
    }));
    const combined = detectors[detectors.length - 1];
    const { radius, kind } = this.calibration.lowPass;
    return {
      prediction: prediction(out.probs, this.labels, options.top),
      detection: {
        adversarial: combined.flagged,
        score: combined.score,
        threshold: combined.threshold,
        targetFpr,
        detectors: detectors.slice(0, -1),
      },
      defense: { radius, kind, prediction: prediction(out.lowPassProbs!, this.labels, options.top) },
    };
  }

  /** Per layer, the distance to every class expectation and the nearest class: the feature trajectory. */
  trajectory(out: ImageOutput): TrajectoryStep[] {
    const state = this.calibration.detectors.activationDistance as ActivationDistanceState;
    return trajectory(state.expectations, out.activations);
  }

  predictedClass(out: ImageOutput): number {
    return argmax(out.probs);
  }
}
