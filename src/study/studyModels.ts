/**
 * The study's models, trained once and kept: each is cached under `<cache>/<key>/`, the key a hash
 * of everything its weights depend on (data set, variant, training settings, seed), so a rerun of
 * the study loads what an earlier one trained and a changed setting trains afresh. A model is
 * written to a temporary folder and renamed into place, so an interrupted run leaves no half model.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { ImageSet } from '../data/fashionMnist';
import { InferenceModel } from '../engine/model';
import { readMetadata, saveModel } from '../engine/modelStore';
import { trainedModelMetadata } from '../train/trainedMetadata';
import { train, TrainOptions } from '../train/trainer';

/** Bump when training code changes what the same settings produce: older cached models are then not reused. */
export const STUDY_CACHE_VERSION = 1;

/** JSON with object keys sorted, so that equal settings give equal text (and equal keys). */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The cache folder name of a model trained with `settings`: 16 hex digits of their SHA-256. */
export function cacheKey(settings: unknown): string {
  return createHash('sha256')
    .update(stableJson({ version: STUDY_CACHE_VERSION, settings }))
    .digest('hex')
    .slice(0, 16);
}

export interface StudyModel {
  readonly model: InferenceModel;
  readonly dir: string;
  /** Loaded from the cache rather than trained by this run. */
  readonly cached: boolean;
  /** Seconds the training took (when it was trained, by whichever run trained it). */
  readonly trainSeconds: number;
  readonly trainImages: number;
  /** Mean training loss of the last epoch. */
  readonly finalLoss: number;
}

type Recorded = { trainSeconds: number; trainImages: number; finalLoss: number };

/**
 * The model trained with `options` on `data`, from the cache when it is there. `settings` is what
 * the key is made of (all that `options` depends on, in plain JSON); `id` names the model.
 */
export async function trainOrLoad(
  cacheDir: string,
  id: string,
  settings: unknown,
  data: ImageSet,
  options: Omit<TrainOptions, 'data'>,
  labels: readonly string[],
): Promise<StudyModel> {
  const dir = path.join(cacheDir, cacheKey(settings));
  if (fs.existsSync(path.join(dir, 'metadata.json'))) {
    const recorded = readMetadata(dir).training as Recorded;
    return { model: await InferenceModel.load(dir), dir, cached: true, ...recorded };
  }
  const result = await train({ ...options, data });
  const recorded: Recorded = {
    trainSeconds: result.seconds,
    trainImages: result.trainImages,
    finalLoss: result.history[result.history.length - 1]?.loss ?? NaN,
  };
  const partial = `${dir}.partial-${process.pid}`;
  try {
    await saveModel(
      result.model,
      partial,
      trainedModelMetadata(id, result, { labels, training: { ...recorded, settings } }),
    );
  } finally {
    result.model.dispose();
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(partial, dir);
  return { model: await InferenceModel.load(dir), dir, cached: false, ...recorded };
}
