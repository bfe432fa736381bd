/**
 * The attacks' cross-entropy, in a module of its own (tfjs only) so that adversarial training can
 * use it without loading the attack machinery.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Per-image cross-entropy of the class marked in `onehot`, written as softplus(logsumexp_{i≠y}(Zᵢ − Z_y)).
 * It equals logsumexp(Z) − Z_y, but tf.losses.softmaxCrossEntropy's gradient, softmax − onehot, loses
 * the true class's share once float32 rounds p_y to 1 (logit gaps above about 17, common on this model):
 * PGD would then only raise the other classes. Here that share is a sum of small terms, kept exactly.
 */
export function crossEntropy(logits: tf.Tensor2D, onehot: tf.Tensor2D): tf.Tensor1D {
  const own = tf.sum(tf.mul(logits, onehot), 1, true);
  // The own class is pushed far below (exp underflows to 0): the sum runs over the others only.
  const others = tf.sub(tf.sub(logits, own), tf.mul(onehot, 1e9));
  return tf.softplus(tf.logSumExp(others, 1)) as tf.Tensor1D;
}
