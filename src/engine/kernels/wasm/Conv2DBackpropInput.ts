/**
 * Conv2DBackpropInput for the wasm backend, replacing tfjs 4.22's own, which runs a scalar loop
 * (~70 img/s for a 2-conv CNN's input gradient against ~900 img/s forward).
 *
 * Three ways, by the convolution's geometry:
 * - a 1×1 filter at stride 1 without padding: dx = dy · Wᵀ, one matrix product. (As a convolution
 *   with a fresh transposed filter, XNNPACK packed that filter on every call: measured on
 *   MobileNetV2's 7×7 layers at batch 8, 24 ms against 10 ms for [8,7,7,1280] × [320,1280]ᵀ.)
 * - a stride above 1: each dy position's patch gradient dy · Wᵀ (one matrix product, M × kh·kw·ci)
 *   added into dx where the forward patch came from (col2im). The dilated form below would
 *   convolve stride² as many positions, mostly zeros, into few output channels: MobileNetV2's stem
 *   (3×3, stride 2, 3 channels out) took 58 ms at batch 8 that way.
 * - otherwise a stride-1 convolution of dy, dilated by the forward stride
 *   (dilatedForInputGradient in compose.ts), with the filter rotated by 180° and its in/out
 *   channels swapped, so XNNPACK's convolution does the work; the borders are Conv2D's explicit
 *   padding.
 */
import {
  backend_util,
  KernelBackend,
  Conv2DBackpropInputAttrs,
  Conv2DBackpropInputInputs,
  KernelConfig,
  KernelFunc,
  TensorInfo,
} from '@tensorflow/tfjs-core';
import { dilatedForInputGradient, KernelComposer, nhwcConvInfo, WasmHeapBackend } from './compose';

/** Each dy position's patch gradient, [n·oh·ow, kh·kw·ci]: dy [M, co] · W [kh·kw·ci, co]ᵀ. */
function patchGradients(c: KernelComposer, dy: TensorInfo, filter: TensorInfo): TensorInfo {
  const [kh, kw, ci, co] = filter.shape;
  const m = dy.shape[0] * dy.shape[1] * dy.shape[2];
  // Transposed here: the stock BatchMatMul is slow on a transposed operand (BatchMatMul.ts).
  const wT = c.transpose(c.reshape(filter, [kh * kw * ci, co]), [1, 0]);
  const product = c.run(
    'BatchMatMul',
    { a: c.reshape(dy, [1, m, co]), b: c.reshape(wT, [1, co, kh * kw * ci]) },
    {
      transposeA: false,
      transposeB: false,
    },
  );
  return c.reshape(product, [m, kh * kw * ci]);
}

/** col2im: adds each patch gradient into dx at the input positions its forward patch read. */
function col2im(backend: WasmHeapBackend, patches: TensorInfo, info: backend_util.Conv2DInfo): TensorInfo {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outHeight: oh, outWidth: ow } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const { top, left } = info.padInfo;
  const out = backend.makeOutput([n, h, w, ci], 'float32');
  // Views after makeOutput, which may grow (and detach) the heap.
  const p = backend.typedArrayFromHeap(patches);
  const dx = backend.typedArrayFromHeap(out);
  dx.fill(0);
  for (let b = 0, src = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * sh - top + ky;
          for (let kx = 0; kx < kw; kx++, src += ci) {
            const ix = ox * sw - left + kx;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            const dst = ((b * h + iy) * w + ix) * ci;
            for (let k = 0; k < ci; k++) dx[dst + k] += p[src + k];
          }
        }
      }
    }
  }
  return out;
}

export function conv2DBackpropInput(args: {
  inputs: Conv2DBackpropInputInputs;
  backend: KernelBackend;
  attrs: Conv2DBackpropInputAttrs;
}): TensorInfo {
  const { inputs, backend, attrs } = args;
  const dy = inputs.dy as TensorInfo;
  const filter = inputs.filter as TensorInfo;
  const info = nhwcConvInfo('Conv2DBackpropInput', attrs.inputShape, filter.shape, attrs);
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const c = new KernelComposer(backend, 'wasm');
  try {
    const unpadded = info.outHeight === info.inHeight && info.outWidth === info.inWidth;
    if (kh === 1 && kw === 1 && sh === 1 && sw === 1 && unpadded) {
      return c.keep(c.reshape(patchGradients(c, dy, filter), attrs.inputShape));
    }
    if (sh > 1 || sw > 1) return col2im(backend as WasmHeapBackend, patchGradients(c, dy, filter), info);
    const { dyd, pad } = dilatedForInputGradient(c, 'Conv2DBackpropInput', dy, info);
    // W [kh,kw,ci,co] → rotated 180° and transposed to [kh,kw,co,ci].
    const flipped = c.run('Reverse', { x: filter }, { dims: [0, 1] });
    const wT = c.transpose(flipped, [0, 1, 3, 2]);
    const dx = c.run('Conv2D', { x: dyd, filter: wT }, {
      strides: [1, 1],
      dilations: [1, 1],
      dataFormat: 'NHWC',
      dimRoundingMode: undefined as unknown as string,
      pad: [[0, 0], ...pad, [0, 0]],
    } as never);
    return c.keep(dx);
  } finally {
    c.dispose();
  }
}

export const conv2DBackpropInputConfig: KernelConfig = {
  kernelName: 'Conv2DBackpropInput',
  backendName: 'wasm',
  kernelFunc: conv2DBackpropInput as unknown as KernelFunc,
};
