/**
 * How well each advsieve detector tells a variant's adversarial images from its clean ones: a
 * small calibration on the variant's own training images (src/calibration/calibrate.ts, as the
 * product fits them; sizes in the study's settings), then every detector's AUROC with clean test
 * images as negatives and each attack's successful adversarial test images as positives (the
 * evaluation's convention, src/evaluation/evaluate.ts). Test images only: calibration never saw them.
 */
import { calibrate } from '../calibration/calibrate';
import type { InferenceModel } from '../engine/model';
import { auroc } from '../evaluation/metrics';
import { runInBatches } from '../screening/inProcess';
import { Screener } from '../screening/screener';
import type { LabelledPixels, Successful } from './robustness';

export interface DetectionSettings {
  readonly fit: number;
  readonly holdout: number;
  readonly attacked: number;
  readonly seed: number;
}

export interface DetectionRow {
  /** The attack whose successful images are the positives. */
  readonly attack: string;
  readonly positives: number;
  readonly negatives: number;
  /** Detector name → AUROC (null: fewer than MIN_POSITIVES successful images). */
  readonly auroc: Record<string, number | null>;
}

export interface Detection {
  readonly calibration: {
    readonly fit: number;
    readonly holdout: number;
    readonly adversarial: number;
    readonly seconds: number;
  };
  readonly detectors: readonly string[];
  readonly rows: DetectionRow[];
}

/** Fewest positives an AUROC is computed on (one or two images give 0, ½ or 1 and mean nothing). */
export const MIN_POSITIVES = 5;

async function scores(model: InferenceModel, screener: Screener, pixels: Float32Array, count: number) {
  const outputs = await runInBatches(model, pixels, count, screener.extras);
  return outputs.map((o) => screener.scores(screener.features(o)));
}

export async function detection(
  model: InferenceModel,
  train: LabelledPixels,
  clean: LabelledPixels,
  successful: readonly Successful[],
  settings: DetectionSettings,
  onStage: (stage: string) => void = () => undefined,
): Promise<Detection> {
  const started = Date.now();
  const calibration = await calibrate(
    model,
    { ...train, source: 'study training images' },
    { ...settings, targetFpr: 0.05, maxAccuracyCost: 0.01, onStage },
    model.stored.sha256,
  );
  const seconds = (Date.now() - started) / 1000;
  const screener = new Screener(calibration, model.metadata.labels);
  const names = screener.detectorNames;
  const negatives = await scores(model, screener, clean.pixels, clean.count);
  const rows: DetectionRow[] = [];
  for (const s of successful) {
    const positives = await scores(model, screener, s.pixels, s.count);
    const column = (table: number[][], k: number) => table.map((r) => r[k]);
    rows.push({
      attack: s.name,
      positives: s.count,
      negatives: clean.count,
      auroc: Object.fromEntries(
        names.map((name, k) => [
          name,
          s.count >= MIN_POSITIVES ? auroc(column(positives, k), column(negatives, k)) : null,
        ]),
      ),
    });
  }
  return {
    calibration: {
      fit: calibration.data.fit,
      holdout: calibration.data.holdout,
      adversarial: calibration.data.adversarial,
      seconds,
    },
    detectors: names,
    rows,
  };
}
