/**
 * Conv2DBackpropFilter for the wasm backend, which tfjs 4.22 does not ship (training fails there).
 *
 * dW[kh,kw,ci,co] = Σ_{n,oh,ow} xpad[n, oh·s+kh, ow·s+kw, ci] · dy[n,oh,ow,co] = Pᵀ·dy
 *
 * with P the patches matrix [n·oh·ow, kh·kw·ci]. The kernel writes Pᵀ straight into the heap, rows
 * in the filter's own (kh, kw, ci) order, and runs one plain matrix product: no concat (wasm's
 * Concat along the channel axis is a slow element loop) and no transposed operand (~1.5 GFLOP/s
 * against ~20 plain). Measured here per call, [x] → co, against the batch-as-channels convolution
 * below: [64,28,28,1]→32 3×3 2.4 vs 18.6 ms (the reference model's conv1: XNNPACK runs one channel
 * by a 28×28 "filter" at ~1.5 GFLOP/s); [8,56,56,24]→144 1×1 7.8–8.4 vs 43–47 ms (MobileNetV2's
 * pointwise layers); [64,14,14,32]→64 3×3 23 vs 24–28 ms; [8,28,28,64]→64 3×3 22–23 vs 20–21 ms.
 *
 * Pᵀ holds kh·kw/(sh·sw) times x's values, so above PATCHES_MAX_ELEMENTS (64 MiB) the kernel falls
 * back to the convolution: with x viewed as [Ci, H, W, N] (the batch as channels) and dy as a
 * filter [OH, OW, N, Co], a valid convolution dilated by the forward stride yields [Ci, KH, KW, Co],
 * in the memory of its operands alone.
 */
import {
  KernelBackend,
  Conv2DBackpropFilterAttrs,
  Conv2DBackpropFilterInputs,
  KernelConfig,
  KernelFunc,
  TensorInfo,
} from '@tensorflow/tfjs-core';
import { KernelComposer, nhwcConvInfo, WasmHeapBackend } from './compose';

/** The largest patches matrix (float32 elements) the kernel writes; larger ones take the convolution. */
export const PATCHES_MAX_ELEMENTS = 1 << 24;

/** `patchesMaxElements` is the kernel's PATCHES_MAX_ELEMENTS (a test sets 0 to take the convolution). */
export function conv2DBackpropFilter(
  args: {
    inputs: Conv2DBackpropFilterInputs;
    backend: KernelBackend;
    attrs: Conv2DBackpropFilterAttrs;
  },
  patchesMaxElements = PATCHES_MAX_ELEMENTS,
): TensorInfo {
  const { inputs, backend, attrs } = args;
  const x = inputs.x as TensorInfo;
  const dy = inputs.dy as TensorInfo;
  const info = nhwcConvInfo('Conv2DBackpropFilter', x.shape, attrs.filterShape, attrs);
  const { inChannels: ci, outChannels: co } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const { top, bottom, left, right } = info.padInfo;
  if (kh * kw * ci * info.batchSize * info.outHeight * info.outWidth <= patchesMaxElements)
    return patchesFilterGradient(backend as WasmHeapBackend, x, dy, info);
  const c = new KernelComposer(backend, 'wasm');
  try {
    const xT = c.transpose(x, [3, 1, 2, 0]); // [ci, h, w, n]
    const dyT = c.transpose(dy, [1, 2, 0, 3]); // [oh, ow, n, co]
    let dw = c.run('Conv2D', { x: xT, filter: dyT }, {
      strides: [1, 1],
      dilations: [sh, sw],
      dataFormat: 'NHWC',
      pad: [
        [0, 0],
        [top, bottom],
        [left, right],
        [0, 0],
      ],
    } as never); // [ci, kh', kw', co], kh' ≥ kh when the forward pass left rows unused
    if (dw.shape[1] !== kh || dw.shape[2] !== kw) {
      dw = c.run('Slice', { x: dw }, { begin: [0, 0, 0, 0], size: [ci, kh, kw, co] });
    }
    return c.keep(c.transpose(dw, [1, 2, 0, 3]));
  } finally {
    c.dispose();
  }
}

/**
 * dW = Pᵀ·dy with Pᵀ[(kh, kw, ci), (n, oh, ow)] = xpad[n, oh·s + kh, ow·s + kw, ci] (zero in the
 * padding): the rows of Pᵀ are in the filter's own order, so the product [kh·kw·ci, co] reshapes
 * to it.
 */
function patchesFilterGradient(
  backend: WasmHeapBackend,
  x: TensorInfo,
  dy: TensorInfo,
  info: ReturnType<typeof nhwcConvInfo>,
): TensorInfo {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outChannels: co } = info;
  const { outHeight: oh, outWidth: ow, filterHeight: kh, filterWidth: kw } = info;
  const { strideHeight: sh, strideWidth: sw } = info;
  const { top, left } = info.padInfo;
  const positions = n * oh * ow;
  const c = new KernelComposer(backend, 'wasm');
  try {
    const patchesT = c.makeOutput([1, kh * kw * ci, positions], 'float32');
    // Views after the last makeOutput: growing the heap detaches earlier ones. makeOutput's memory
    // is not zeroed, so every element is written, padding included.
    const xs = backend.typedArrayFromHeap(x);
    const out = backend.typedArrayFromHeap(patchesT);
    let row = 0;
    for (let i = 0; i < kh; i++)
      for (let j = 0; j < kw; j++)
        for (let ch = 0; ch < ci; ch++, row++) {
          let o = row * positions;
          for (let b = 0; b < n; b++)
            for (let r = 0; r < oh; r++) {
              const y = r * sh + i - top;
              if (y < 0 || y >= h) {
                out.fill(0, o, o + ow);
                o += ow;
                continue;
              }
              const base = (b * h + y) * w * ci + ch;
              for (let col = 0; col < ow; col++, o++) {
                const xcol = col * sw + j - left;
                out[o] = xcol >= 0 && xcol < w ? xs[base + xcol * ci] : 0;
              }
            }
        }
    const dy3 = c.reshape(dy, [1, positions, co]);
    const dw = c.run('BatchMatMul', { a: patchesT, b: dy3 }, { transposeA: false, transposeB: false });
    return c.keep(c.reshape(dw, [kh, kw, ci, co]));
  } finally {
    c.dispose();
  }
}

export const conv2DBackpropFilterConfig: KernelConfig = {
  kernelName: 'Conv2DBackpropFilter',
  backendName: 'wasm',
  kernelFunc: ((args: Parameters<typeof conv2DBackpropFilter>[0]) =>
    conv2DBackpropFilter(args)) as unknown as KernelFunc,
};
