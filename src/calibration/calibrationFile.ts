/**
 * calibration.json: everything screening needs besides the model — the detectors' fitted states,
 * the spectral cut-off, the low-pass radius, the combined regression and the clean hold-out scores
 * that thresholds are read from (so a client can ask for any false-positive rate). It names the
 * model it belongs to by the SHA-256 of the model files, and loading refuses another model's file.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { CombinedState } from '../detectors/combined';
import type { LowPassKind } from '../engine/spectra';

export const CALIBRATION_SCHEMA_VERSION = 1;
export const CALIBRATION_FILE = 'calibration.json';

export interface LowPassChoice {
  readonly radius: number;
  readonly kind: LowPassKind;
  /** Clean hold-out accuracy without and with the filter, and on the calibration attacks with it. */
  readonly cleanAccuracy: number;
  readonly filteredAccuracy: number;
  readonly adversarialAccuracy: number;
  readonly maxCost: number;
  readonly candidates: ReadonlyArray<{
    radius: number;
    kind: LowPassKind;
    filteredAccuracy: number;
    adversarialAccuracy: number;
  }>;
}

export interface Calibration {
  readonly schemaVersion: number;
  readonly model: { readonly id: string; readonly sha256: string };
  readonly createdAt: string;
  readonly data: {
    readonly source: string;
    readonly fit: number;
    readonly holdout: number;
    /** Hold-out images the thresholds are read from (the other half fits the combined regression). */
    readonly thresholdImages: number;
    readonly adversarial: number;
    readonly attacks: readonly string[];
    /** Fit images per class, by label (absent in files written before it was recorded). */
    readonly classImages?: Readonly<Record<string, number>>;
    /** Classes with fewer than MIN_CLASS_IMAGES fit images: they use the pooled statistics of all classes. */
    readonly pooledClasses?: readonly string[];
  };
  readonly hiddenLayer: string;
  readonly defaultTargetFpr: number;
  readonly lowPass: LowPassChoice;
  /** Detector name → fitted state (see each detector's module). */
  readonly detectors: Readonly<Record<string, unknown>>;
  readonly combined: CombinedState;
  /** Detector name (and 'combined') → clean hold-out scores, ascending. */
  readonly holdoutScores: Readonly<Record<string, number[]>>;
  /** Calibration's own measurements, for the record (AUROC on its attacks, seconds taken). */
  readonly summary: Readonly<Record<string, unknown>>;
}

export class CalibrationError extends Error {
  constructor(
    readonly code: 'CALIBRATION_MISSING' | 'CALIBRATION_CORRUPT' | 'CALIBRATION_MISMATCH',
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`);
    this.name = 'CalibrationError';
  }
}

export function calibrationPath(modelDir: string): string {
  return path.join(modelDir, CALIBRATION_FILE);
}

export function saveCalibration(file: string, calibration: Calibration): void {
  fs.writeFileSync(file, JSON.stringify(calibration) + '\n');
}

/** Reads and checks a calibration file; `modelSha256` is the hash of the model it must belong to. */
export function loadCalibration(file: string, modelSha256: string): Calibration {
  return readCalibration(file, modelSha256).calibration;
}

/** loadCalibration, with the SHA-256 of the file's bytes (its version in the audit log), from one read. */
export function readCalibration(file: string, modelSha256: string): { calibration: Calibration; sha256: string } {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new CalibrationError(
      missing ? 'CALIBRATION_MISSING' : 'CALIBRATION_CORRUPT',
      file,
      missing ? 'no calibration file; run `npx advsieve calibrate` for this model' : (err as Error).message,
    );
  }
  let c: Calibration;
  try {
    c = JSON.parse(bytes.toString('utf8')) as Calibration;
  } catch (err) {
    throw new CalibrationError('CALIBRATION_CORRUPT', file, `not valid JSON (${(err as Error).message})`);
  }
  if (c?.schemaVersion !== CALIBRATION_SCHEMA_VERSION) {
    throw new CalibrationError(
      'CALIBRATION_CORRUPT',
      file,
      `schema version ${String(c?.schemaVersion)}, this advsieve reads version ${CALIBRATION_SCHEMA_VERSION}; calibrate again`,
    );
  }
  for (const key of ['model', 'lowPass', 'detectors', 'combined', 'holdoutScores'] as const) {
    if (typeof c[key] !== 'object' || c[key] === null)
      throw new CalibrationError('CALIBRATION_CORRUPT', file, `field '${key}' is missing`);
  }
  if (c.model.sha256 !== modelSha256) {
    throw new CalibrationError(
      'CALIBRATION_MISMATCH',
      file,
      `belongs to model ${c.model.id} with SHA-256 ${c.model.sha256.slice(0, 12)}…, but the loaded model's is ${modelSha256.slice(0, 12)}…; calibrate again`,
    );
  }
  return { calibration: c, sha256: createHash('sha256').update(bytes).digest('hex') };
}
