/**
 * Training losses on logits [N, K] and one-hot targets [N, K], each the mean over the batch of a
 * per-image loss.
 *
 * - `softmax`: softmax cross-entropy, −log softmax(z)_y. The K probabilities sum to 1, so raising
 *   one class's score must lower the others': the one-sum constraint that the causes study suspects
 *   of making adversarial predictions confident.
 * - `ovr`: one-vs-rest, a binary cross-entropy per class on sigmoid(z_k), summed over the classes
 *   (each class its own yes/no question, with no constraint between them: an image may be "none of
 *   them", every sigmoid low). The served probabilities of such a model are the per-class sigmoids
 *   (metadata `probabilities: 'sigmoid'`).
 */
import * as tf from '@tensorflow/tfjs';
import type { ProbabilityKind } from '../engine/modelStore';

export type LossKind = 'softmax' | 'ovr';
export const LOSSES: readonly LossKind[] = ['softmax', 'ovr'];

/** Checks a loss name; throws a RangeError naming the allowed ones. */
export function checkLoss(loss: string): LossKind {
  if (!(LOSSES as readonly string[]).includes(loss))
    throw new RangeError(`loss: expected one of ${LOSSES.join(', ')}, got '${loss}'`);
  return loss as LossKind;
}

/**
 * Σ_k BCE(sigmoid(z_k), y_k) per image, written as softplus(z) − y·z: exact for large |z|, where
 * log(sigmoid(z)) would round to log 0.
 */
export function oneVsRestLoss(target: tf.Tensor2D, logits: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.sum(tf.sub(tf.softplus(logits), tf.mul(target, logits)), 1) as tf.Tensor1D);
}

/** The batch's mean loss (a scalar to differentiate). */
export function classificationLoss(kind: LossKind, target: tf.Tensor2D, logits: tf.Tensor2D): tf.Scalar {
  if (kind === 'ovr') return tf.mean(oneVsRestLoss(target, logits));
  return tf.losses.softmaxCrossEntropy(target, logits) as tf.Scalar;
}

/** What the served probabilities are for a model trained with this loss. */
export function probabilityKindOf(kind: LossKind): ProbabilityKind {
  return kind === 'ovr' ? 'sigmoid' : 'softmax';
}
