/**
 * The two logits every margin is made of: the one of a given class, and the largest of the others
 * (the runner-up once that class is set aside). CW's and the end-to-end attack's margin losses and
 * the boundary-margin detector all read them; differentiable, with the class fixed by `onehot`.
 */
import * as tf from '@tensorflow/tfjs';

/** Per row of logits [N, K]: the logit of the class marked in `onehot` [N, K], and the largest other. */
export function ownAndBestOther(logits: tf.Tensor2D, onehot: tf.Tensor2D): { own: tf.Tensor1D; other: tf.Tensor1D } {
  const own = tf.sum(tf.mul(logits, onehot), 1) as tf.Tensor1D;
  // The own class pushed far below every other, so the max is the best of the rest.
  const other = tf.max(tf.sub(logits, tf.mul(onehot, 1e9)), 1) as tf.Tensor1D;
  return { own, other };
}
