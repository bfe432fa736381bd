/**
 * Sets a trained PNN head's background density b (src/engine/layers/pnnHead.ts), which no
 * classification loss can learn (b sits in no class's numerator, so the loss only ever pushes it
 * down): log b is put at the `quantile` of the training images' log total density, so that that
 * share of the training images have p(none) ≥ 0.5 and the rest less — the density threshold of an
 * outlier test with a known false-alarm rate on the training data.
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageSet } from '../data/fashionMnist';
import { logTotalDensity, PnnHead } from '../engine/layers/pnnHead';

export interface PnnBackground {
  readonly logBackground: number;
  /** Share of the training images with p(none) ≥ 0.5. */
  readonly quantile: number;
  /** Training images whose densities set it. */
  readonly images: number;
  /** The kernels' learned width σ. */
  readonly sigma: number;
}

export const DEFAULT_BACKGROUND_QUANTILE = 0.01;

/** The quantile, checked (the trainer checks it before training, not after). */
export function checkBackgroundQuantile(quantile = DEFAULT_BACKGROUND_QUANTILE): number {
  if (!(quantile > 0 && quantile < 1))
    throw new RangeError(
      `PNN background quantile (the share of training images in 'none'): expected a number in (0, 1), got ${quantile}`,
    );
  return quantile;
}

function pnnHeadOf(model: tf.LayersModel): PnnHead {
  const head = model.getLayer('logits');
  if (!(head instanceof PnnHead)) throw new Error(`layer 'logits' is a ${head.getClassName()}, not a PNN head`);
  return head;
}

/** log (1/K) Σ_k d_k(x) of the first `limit` images of `set` under `model`'s PNN head. */
export async function logTotalDensities(
  model: tf.LayersModel,
  set: ImageSet,
  limit = set.count,
): Promise<Float64Array> {
  const head = pnnHeadOf(model);
  const logitsModel = tf.model({ inputs: model.inputs, outputs: head.output as tf.SymbolicTensor });
  const n = Math.min(limit, set.count);
  const size = set.height * set.width;
  const densities = new Float64Array(n);
  for (let i = 0; i < n; i += 256) {
    const m = Math.min(256, n - i);
    const t = tf.tidy(() =>
      logTotalDensity(
        logitsModel.predict(
          tf.tensor4d(set.pixels.subarray(i * size, (i + m) * size), [m, set.height, set.width, 1]),
        ) as tf.Tensor2D,
      ),
    );
    densities.set(await t.data(), i);
    t.dispose();
  }
  return densities;
}

/** Share of the first `limit` images of `set` with p(none) ≥ 0.5 (total density at most b). */
export async function noneShare(model: tf.LayersModel, set: ImageSet, limit = set.count): Promise<number> {
  const logB = pnnHeadOf(model).getLogBackground();
  const d = await logTotalDensities(model, set, limit);
  return d.filter((v) => v <= logB).length / Math.max(1, d.length);
}

/** Sets log b of `model`'s PNN head (layer 'logits') from the first `images` images of `set`, and returns it. */
export async function calibratePnnBackground(
  model: tf.LayersModel,
  set: ImageSet,
  opts: { quantile?: number; images?: number } = {},
): Promise<PnnBackground> {
  const quantile = checkBackgroundQuantile(opts.quantile);
  const densities = await logTotalDensities(model, set, opts.images ?? 2000);
  const n = densities.length;
  if (n === 0) throw new Error('no images to set the PNN background density from');
  densities.sort();
  const logBackground = densities[Math.min(n - 1, Math.floor(quantile * n))];
  const head = pnnHeadOf(model);
  head.setLogBackground(logBackground);
  return { logBackground, quantile, images: n, sigma: head.sigma() };
}
