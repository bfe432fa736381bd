/**
 * The labelled images a command works on, for a model of any input shape: a folder with one
 * sub-folder per class (`--images DIR`), any folder labelled by the model's own predictions
 * (`--images DIR --labels predicted`), or a split of Fashion-MNIST (no `--images`, 28×28×1 models
 * only). `calibrate` reads the training split, `evaluate` the test split: neither sees the other's.
 */
import { loadFashionMnist, type Split } from './fashionMnist';
import { loadImageFolder, loadUnlabelledImages } from './imageFolder';
import { argmax } from '../detectors/detector';
import type { InferenceModel } from '../engine/model';
import { probabilitiesInBatches } from '../screening/inProcess';
import { logger } from '../util/logger';

export interface LabelledImageSet {
  readonly pixels: Float32Array;
  readonly labels: Int32Array;
  readonly count: number;
  /** Where they came from, in words (reports and calibration files say it). */
  readonly source: string;
}

export interface ImageSource {
  /** A folder of images; undefined: Fashion-MNIST's `split` from `data`. */
  readonly images?: string;
  /** Where a folder's classes come from: its sub-folders, or the model's predictions. */
  readonly labels: 'folders' | 'predicted';
  /** The Fashion-MNIST IDX directory. */
  readonly data: string;
  readonly split: Split;
  /** Fashion-MNIST images read at most (folders are read whole). */
  readonly limit?: number;
}

/** What a long read reports (src/cli/progress.ts's StageProgress fits). */
export interface ReadProgress {
  readonly onStage: (stage: string) => void;
  readonly onProgress: (done: number, total: number) => void;
}

const QUIET: ReadProgress = { onStage: () => undefined, onProgress: () => undefined };

export async function readLabelledImages(
  source: ImageSource,
  model: InferenceModel,
  progress: ReadProgress = QUIET,
): Promise<LabelledImageSet> {
  const shape = [...model.inputShape] as [number, number, number];
  if (source.images) progress.onStage(`reading and decoding the images of ${source.images}`);
  if (source.labels === 'predicted') {
    if (!source.images) throw new Error('--labels predicted labels the images of a folder: pass --images DIR');
    const found = await loadUnlabelledImages(source.images, shape, progress.onProgress);
    for (const s of found.skipped) logger.warn(`skipped ${s.file}: ${s.code}: ${s.message}`);
    progress.onStage(`labelling ${found.count} images of ${source.images} by the model's predictions`);
    const probs = await probabilitiesInBatches(model, found.pixels, found.count, undefined, (done) =>
      progress.onProgress(done, found.count),
    );
    return {
      pixels: found.pixels,
      labels: Int32Array.from(probs, (p) => argmax(p)),
      count: found.count,
      source: `folder ${source.images}, labelled by the model's predictions`,
    };
  }
  if (source.images) {
    const folder = await loadImageFolder(source.images, shape, {
      labels: model.metadata.labels,
      onProgress: progress.onProgress,
    });
    for (const s of folder.skipped) logger.warn(`skipped ${s.file}: ${s.code}: ${s.message}`);
    return { pixels: folder.pixels, labels: folder.labels, count: folder.count, source: `folder ${source.images}` };
  }
  const [h, w, c] = shape;
  if (h !== 28 || w !== 28 || c !== 1) {
    throw new Error(`the model takes ${h}×${w}×${c} images, Fashion-MNIST is 28×28×1: pass --images DIR`);
  }
  const set = loadFashionMnist(source.split, source.data, source.limit);
  return {
    pixels: set.pixels,
    labels: Int32Array.from(set.labels),
    count: set.count,
    source: `fashion-mnist ${source.split}`,
  };
}

/**
 * The images at `indices` (in that order), copied out of `set`; `size` values an image. The copy
 * says `source`, by default the set's (or nothing, for images made here: attacks, samples).
 */
export function pickImages(
  set: Pick<LabelledImageSet, 'pixels' | 'labels'> & { readonly source?: string },
  indices: ArrayLike<number>,
  size: number,
  source = set.source ?? '',
): LabelledImageSet {
  const pixels = new Float32Array(indices.length * size);
  const labels = new Int32Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    pixels.set(set.pixels.subarray(indices[k] * size, (indices[k] + 1) * size), k * size);
    labels[k] = set.labels[indices[k]];
  }
  return { pixels, labels, count: indices.length, source };
}
