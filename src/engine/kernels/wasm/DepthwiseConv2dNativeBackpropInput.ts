/**
 * DepthwiseConv2dNativeBackpropInput for the wasm backend, which tfjs 4.22 lacks: without it no
 * input gradient of a MobileNet-style network (depthwise separable convolutions) runs on wasm, so
 * neither attacks nor Grad-CAM nor adaptive evaluation can use it (measured on nsfwjs' MobileNetV2:
 * its 17 depthwise layers each need it).
 *
 * As Conv2DBackpropInput.ts does for Conv2D: the input gradient is a stride-1 depthwise correlation
 * of dy, dilated by the forward stride, with the filter rotated by 180°. With a channel multiplier
 * m > 1, dy's ci·m channels are correlated one by one (the filter as [kh, kw, ci·m, 1]) and each
 * input channel's m results summed. wasm's DepthwiseConv2dNative (XNNPACK) does the work.
 */
import {
  backend_util,
  DepthwiseConv2dNativeBackpropInputAttrs,
  DepthwiseConv2dNativeBackpropInputInputs,
  KernelBackend,
  KernelConfig,
  KernelFunc,
  TensorInfo,
} from '@tensorflow/tfjs-core';
import { dilatedForInputGradient, KernelComposer } from './compose';

export function depthwiseConv2dNativeBackpropInput(args: {
  inputs: DepthwiseConv2dNativeBackpropInputInputs;
  backend: KernelBackend;
  attrs: DepthwiseConv2dNativeBackpropInputAttrs;
}): TensorInfo {
  const { inputs, backend, attrs } = args;
  const dy = inputs.dy as TensorInfo;
  const filter = inputs.filter as TensorInfo;
  const dilations = typeof attrs.dilations === 'number' ? [attrs.dilations, attrs.dilations] : attrs.dilations;
  if (dilations.some((d) => d !== 1)) {
    throw new Error(`wasm DepthwiseConv2dNativeBackpropInput supports dilation 1 only; got ${dilations.join('×')}`);
  }
  const info = backend_util.computeConv2DInfo(
    attrs.inputShape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    true,
  );
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, filterHeight: kh, filterWidth: kw } = info;
  const m = filter.shape[3];
  const co = ci * m;
  const c = new KernelComposer(backend, 'wasm');
  try {
    const { dyd, pad } = dilatedForInputGradient(c, 'DepthwiseConv2dNativeBackpropInput', dy, info);
    // W [kh,kw,ci,m] rotated 180°, one filter per dy channel: [kh,kw,ci·m,1].
    const rotated = c.reshape(c.run('Reverse', { x: filter }, { dims: [0, 1] }), [kh, kw, co, 1]);
    const perChannel = c.run('DepthwiseConv2dNative', { x: dyd, filter: rotated }, {
      strides: [1, 1],
      dilations: [1, 1],
      pad: [[0, 0], ...pad, [0, 0]],
      dataFormat: 'NHWC',
    } as never);
    const dx =
      m === 1
        ? perChannel
        : c.run('Sum', { x: c.reshape(perChannel, [n, h, w, ci, m]) }, { axis: [4], keepDims: false });
    return c.keep(dx);
  } finally {
    c.dispose();
  }
}

export const depthwiseConv2dNativeBackpropInputConfig: KernelConfig = {
  kernelName: 'DepthwiseConv2dNativeBackpropInput',
  backendName: 'wasm',
  kernelFunc: depthwiseConv2dNativeBackpropInput as unknown as KernelFunc,
};
