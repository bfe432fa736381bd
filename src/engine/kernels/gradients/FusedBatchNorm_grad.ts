/**
 * FusedBatchNorm's gradient, as tfjs-core's but lazy: tfjs-core's computes x − mean and dy · scale
 * over the whole activation before the tape asks for any input, and its x gradient tiles the
 * per-channel factor over the activation and multiplies twice. An input gradient wants x's only:
 * here that is dy times one per-channel factor, scale / √(variance + ε) (a broadcasting multiply),
 * and the terms the other inputs need are computed only when their gradients are asked for. The
 * tape keeps what a gradient makes until the backward pass ends, so the eager terms also cost
 * memory: two activations' worth per batch norm, 52 of them in MobileNetV2.
 */
import * as tf from '@tensorflow/tfjs-core';
import { FusedBatchNormAttrs, GradConfig } from '@tensorflow/tfjs-core';

export const fusedBatchNormGradientConfig: GradConfig = {
  kernelName: tf.FusedBatchNorm,
  inputsToSave: ['x', 'mean', 'variance', 'scale'],
  gradFunc: (dy, saved, attrs) => {
    const g = dy as tf.Tensor;
    const { varianceEpsilon } = attrs as unknown as FusedBatchNormAttrs;
    const [x, mean, variance, scale] = saved;
    const scaleValue = scale ?? tf.scalar(1);
    const reductionAxes = tf.backend_util.getReductionAxes(mean.shape, x.shape);
    // Per channel (or per element, when the statistics have x's rank): summed to mean's shape.
    const reduce = (t: tf.Tensor) => tf.reshape(mean.rank === 1 ? tf.sum(t, reductionAxes) : t, mean.shape);
    const oneOverSqrtVariance = tf.rsqrt(tf.add(variance, tf.scalar(varianceEpsilon)));
    const dyTimesScale = () => tf.mul(g, scaleValue);
    return {
      x: () => tf.reshape(tf.mul(g, tf.mul(oneOverSqrtVariance, scaleValue)), x.shape),
      mean: () => reduce(tf.mul(tf.neg(oneOverSqrtVariance), dyTimesScale())),
      variance: () => {
        const r = oneOverSqrtVariance;
        const minusHalfRCube = tf.mul(tf.mul(tf.mul(r, r), r), tf.scalar(-0.5));
        return reduce(tf.mul(tf.mul(minusHalfRCube, tf.sub(x, mean)), dyTimesScale()));
      },
      scale: () => reduce(tf.mul(g, tf.mul(tf.sub(x, mean), oneOverSqrtVariance))),
      offset: () => reduce(g),
    };
  },
};
