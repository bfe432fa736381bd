/**
 * 2×2 median smoothing, the second feature squeezer of Xu, Evans & Qi 2018, "Feature Squeezing:
 * Detecting Adversarial Examples in Deep Neural Networks" (NDSS), per channel.
 *
 * An even window has no centre and no single middle value, so here: the window of output pixel
 * (i, j) covers input pixels (i..i+1, j..j+1); past the last row or column the edge pixel is
 * repeated; the median of its 4 values is the mean of the two middle ones, (sum − min − max) / 2.
 * (scipy.ndimage.median_filter, which Xu et al. used, instead takes the upper middle value of the
 * window (i−1..i, j−1..j) with reflected edges; the two agree on what they smooth away — isolated
 * one-pixel spikes — and ours is symmetric in the four values.)
 *
 * Built from slices, min and max, so it runs on every backend and is differentiable almost
 * everywhere: applyDifferentiable gives adaptive attacks its exact (sub)gradient.
 */
import * as tf from '@tensorflow/tfjs';
import { checkImages, Defense } from './defense';

export class MedianDefense implements Defense {
  readonly name = 'median' as const;

  async apply(x: tf.Tensor4D): Promise<tf.Tensor4D> {
    return this.applyDifferentiable(x);
  }

  applyDifferentiable(x: tf.Tensor4D): tf.Tensor4D {
    checkImages(this.name, x);
    return tf.tidy(() => {
      const [n, h, w, c] = x.shape;
      // Edge replication: append the last row, then the last column.
      const rows = tf.concat([x, tf.slice(x, [0, h - 1, 0, 0], [n, 1, w, c])], 1);
      const padded = tf.concat([rows, tf.slice(rows, [0, 0, w - 1, 0], [n, h + 1, 1, c])], 2);
      const at = (dy: number, dx: number) => tf.slice(padded, [0, dy, dx, 0], [n, h, w, c]);
      const a = at(0, 0);
      const b = at(0, 1);
      const d = at(1, 0);
      const e = at(1, 1);
      const lo = tf.minimum(tf.minimum(a, b), tf.minimum(d, e));
      const hi = tf.maximum(tf.maximum(a, b), tf.maximum(d, e));
      const sum = tf.addN([a, b, d, e]);
      return tf.div(tf.sub(sum, tf.add(lo, hi)), 2) as tf.Tensor4D;
    });
  }
}
