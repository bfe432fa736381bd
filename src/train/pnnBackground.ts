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

/** Sets log b of `model`'s PNN head (layer 'logits') from up to `images` images of `set`, and returns it. */
export async function calibratePnnBackground(
  model: tf.LayersModel,
  set: ImageSet,
  opts: { quantile?: number; images?: number } = {},
): Promise<PnnBackground> {
  const quantile = checkBackgroundQuantile(opts.quantile);
  const head = model.getLayer('logits');
  if (!(head instanceof PnnHead)) throw new Error(`layer 'logits' is a ${head.getClassName()}, not a PNN head`);
  const logitsModel = tf.model({ inputs: model.inputs, outputs: head.output as tf.SymbolicTensor });
  const n = Math.min(opts.images ?? 2000, set.count);
  if (n === 0) throw new Error('no images to set the PNN background density from');
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
  densities.sort();
  const logBackground = densities[Math.min(n - 1, Math.floor(quantile * n))];
  head.setLogBackground(logBackground);
  return { logBackground, quantile, images: n, sigma: head.sigma() };
}
