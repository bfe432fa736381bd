/**
 * ClipByValue's gradient, in one kernel where the backend has one (ClipByValueGrad: dy where
 * min ≤ x ≤ max, else 0). tfjs-core's runs five: GreaterEqual, LessEqual, LogicalAnd, ZerosLike
 * and Select, each over the whole activation; on wasm they took 43% of a MobileNetV2 input
 * gradient at batch 8 (tfjs-layers' ReLU6 is a Relu then a ClipByValue; one ClipByValueGrad per
 * layer takes a sixth of their time). Backends without the kernel get tfjs-core's ops, unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ClipByValueAttrs, getKernel, GradConfig, NamedAttrMap } from '@tensorflow/tfjs-core';

/** advsieve's kernel name: inputs dy and x (same shape, float32), ClipByValue's attrs. */
export const CLIP_BY_VALUE_GRAD = 'ClipByValueGrad';

export const clipByValueGradientConfig: GradConfig = {
  kernelName: tf.ClipByValue,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved;
    const g = dy as tf.Tensor;
    const { clipValueMin, clipValueMax } = attrs as unknown as ClipByValueAttrs;
    const oneKernel =
      getKernel(CLIP_BY_VALUE_GRAD, tf.getBackend()) !== undefined &&
      x.dtype === 'float32' &&
      g.dtype === 'float32' &&
      tf.util.arraysEqual(x.shape, g.shape);
    return {
      x: () =>
        oneKernel
          ? (tf.engine().runKernel(CLIP_BY_VALUE_GRAD, { dy: g, x }, attrs as NamedAttrMap) as tf.Tensor)
          : tf.where(
              tf.logicalAnd(tf.greaterEqual(x, clipValueMin), tf.lessEqual(x, clipValueMax)),
              g,
              tf.zerosLike(g),
            ),
    };
  },
};
