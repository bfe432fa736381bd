/**
 * calibration.json: everything screening needs besides the model — the detectors' fitted states,
 * the spectral cut-off, the low-pass radius, the combined regression and the clean hold-out scores
 * that thresholds are read from (so a client can ask for any false-positive rate). It names the
 * model it belongs to by the SHA-256 of the model files, and loading refuses another model's file.
 * Its large numeric arrays (a wide layer's precision matrix) live in calibration.bin beside it,
 * which the JSON names with its SHA-256 (./sidecar.ts); a calibration without one has no such file.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { CombinedState } from '../detectors/combined';
import type { LowPassKind } from '../engine/spectra';
import { extractLargeArrays, restoreLargeArrays, sidecarRecord, SidecarRecord } from './sidecar';

/** 2: large arrays may be in a sidecar file. Version 1 files (all JSON, e.g. fashion-cnn's) read as before. */
export const CALIBRATION_SCHEMA_VERSION = 2;
const READABLE_SCHEMA_VERSIONS: readonly number[] = [1, CALIBRATION_SCHEMA_VERSION];
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

/**
 * The clean images the thresholds were read from, when they are not the hold-out's: images the
 * model was not trained on, so that the rate asked for holds on unseen images (src/calibration/thresholds.ts).
 */
export interface ThresholdRecord {
  /** In words, e.g. "fashion-mnist test, threshold part (5000 of 10000, seed 20261203)". */
  readonly source: string;
  readonly images: number;
  /** Fashion-MNIST test images set aside for thresholds: `evaluate` leaves them out (src/data/testSplitParts.ts). */
  readonly testPart?: { readonly seed: number; readonly count: number; readonly of: number };
  readonly readAt: string;
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
    /** Hold-out images per class, by label (absent in files written before it was recorded). */
    readonly holdoutClassImages?: Readonly<Record<string, number>>;
    /** Classes with fewer than MIN_CLASS_IMAGES fit images: they use the pooled statistics of all classes. */
    readonly pooledClasses?: readonly string[];
    /** Where the threshold images came from; absent: the second half of the hold-out (training images). */
    readonly thresholds?: ThresholdRecord;
  };
  readonly hiddenLayer: string;
  readonly defaultTargetFpr: number;
  readonly lowPass: LowPassChoice;
  /** Detector name → fitted state (see each detector's module). */
  readonly detectors: Readonly<Record<string, unknown>>;
  readonly combined: CombinedState;
  /** Detector name (and 'combined') → the clean threshold images' scores, ascending (data.thresholds says whose). */
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

/** The sidecar of a calibration file: calibration.json → calibration.bin (any other name: name.bin). */
export function sidecarPath(file: string): string {
  return path.join(path.dirname(file), path.basename(file, '.json') + '.bin');
}

/**
 * Writes the calibration, its large arrays to the sidecar — first, so that a JSON is never
 * written that names a sidecar not yet there. A calibration with no large array removes a
 * sidecar left by an earlier one.
 */
export function saveCalibration(file: string, calibration: Calibration): void {
  const { value, bytes } = extractLargeArrays(calibration);
  const binary = sidecarPath(file);
  if (bytes.length === 0) {
    fs.rmSync(binary, { force: true });
    fs.writeFileSync(file, JSON.stringify(calibration) + '\n');
    return;
  }
  fs.writeFileSync(binary, bytes);
  const stored: StoredCalibration = { ...value, sidecar: sidecarRecord(path.basename(binary), bytes) };
  fs.writeFileSync(file, JSON.stringify(stored) + '\n');
}

/** The JSON as stored: the calibration with its large arrays replaced by references into the sidecar. */
type StoredCalibration = Calibration & { readonly sidecar?: SidecarRecord };

/** The file's bytes; a CalibrationError naming it when it cannot be read (`missing` when it does not exist). */
function readBytes(file: string, missing: { code: CalibrationError['code']; detail: string }): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new CalibrationError(missing.code, file, missing.detail);
    throw new CalibrationError('CALIBRATION_CORRUPT', file, (err as Error).message);
  }
}

/** Reads the sidecar the JSON names and puts its arrays back; throws CALIBRATION_CORRUPT naming it. */
function withSidecar(file: string, stored: StoredCalibration): { calibration: Calibration; bytes?: Buffer } {
  const { sidecar, ...calibration } = stored;
  if (sidecar === undefined) return { calibration };
  if (typeof sidecar?.file !== 'string' || sidecar.file !== path.basename(sidecar.file) || sidecar.file === '..') {
    throw new CalibrationError('CALIBRATION_CORRUPT', file, `field 'sidecar.file' must name a file beside it`);
  }
  const binary = path.join(path.dirname(file), sidecar.file);
  const bytes = readBytes(binary, {
    code: 'CALIBRATION_CORRUPT',
    detail: `missing: ${path.basename(file)} keeps its large arrays in it; copy it beside ${path.basename(file)} or calibrate again`,
  });
  const restored = restoreLargeArrays(calibration, sidecar, bytes);
  if (restored.problem !== undefined) {
    throw new CalibrationError('CALIBRATION_CORRUPT', binary, `${restored.problem}; calibrate again`);
  }
  return { calibration: restored.value, bytes };
}

/** Reads and checks a calibration file; `modelSha256` is the hash of the model it must belong to. */
export function loadCalibration(file: string, modelSha256: string): Calibration {
  return readCalibration(file, modelSha256).calibration;
}

/**
 * loadCalibration, with the calibration's version in the audit log: the SHA-256 of the JSON's bytes
 * followed by the sidecar's (of the JSON alone when it has none, as for files written before it).
 */
export function readCalibration(file: string, modelSha256: string): { calibration: Calibration; sha256: string } {
  const bytes = readBytes(file, {
    code: 'CALIBRATION_MISSING',
    detail: 'no calibration file; run `npx advsieve calibrate` for this model',
  });
  let c: StoredCalibration;
  try {
    c = JSON.parse(bytes.toString('utf8')) as StoredCalibration;
  } catch (err) {
    throw new CalibrationError('CALIBRATION_CORRUPT', file, `not valid JSON (${(err as Error).message})`);
  }
  if (!READABLE_SCHEMA_VERSIONS.includes(c?.schemaVersion)) {
    throw new CalibrationError(
      'CALIBRATION_CORRUPT',
      file,
      `schema version ${String(c?.schemaVersion)}, this advsieve reads versions ${READABLE_SCHEMA_VERSIONS.join(' and ')}; calibrate again`,
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
  const { calibration, bytes: sidecarBytes } = withSidecar(file, c);
  const sha256 = createHash('sha256').update(bytes);
  if (sidecarBytes) sha256.update(sidecarBytes);
  return { calibration, sha256: sha256.digest('hex') };
}
