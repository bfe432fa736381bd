/**
 * Slice for the wasm backend, in front of the stock kernel. tfjs 4.22's copies the whole input out
 * of the heap first (readSync), then copies one innermost row at a time: a ZeroPadding2D's
 * gradient to [8, 112, 112, 96] made 100k copies of 96 values, ~70 ms. Here the trailing axes the
 * slice takes whole are merged with the last axis it cuts, so each copy moves one contiguous run,
 * heap to heap (896 copies of 112·96 values for that gradient). Strings keep the stock kernel.
 */
import {
  KernelBackend,
  KernelConfig,
  KernelFunc,
  SliceAttrs,
  SliceInputs,
  slice_util,
  TensorInfo,
  util,
} from '@tensorflow/tfjs-core';
import { WasmHeapBackend } from './compose';

export function makeSliceConfig(stock: KernelConfig): KernelConfig {
  const kernelFunc = (args: { inputs: SliceInputs; backend: KernelBackend; attrs: SliceAttrs }): TensorInfo => {
    const backend = args.backend as WasmHeapBackend;
    const x = args.inputs.x as TensorInfo;
    if (x.dtype === 'string') return stock.kernelFunc(args as never) as TensorInfo;
    const [begin, size] = slice_util.parseSliceParams(x, args.attrs.begin, args.attrs.size);
    const out = backend.makeOutput(size, x.dtype);
    if (util.sizeFromShape(size) === 0) return out;
    const strides = [...util.computeStrides(x.shape), 1];
    // The last axis cut short; every axis after it is taken whole, so runs there are contiguous.
    let cut = x.shape.length - 1;
    while (cut > 0 && size[cut] === x.shape[cut]) cut--;
    const run = size[cut] * strides[cut];
    // Views after makeOutput, which may grow (and detach) the heap.
    const from = backend.typedArrayFromHeap(x);
    const to = backend.typedArrayFromHeap(out);
    const index = new Array<number>(cut).fill(0);
    for (let o = 0; o < to.length; o += run) {
      let offset = begin[cut] * strides[cut];
      for (let d = 0; d < cut; d++) offset += (begin[d] + index[d]) * strides[d];
      to.set(from.subarray(offset, offset + run), o);
      for (let d = cut - 1; d >= 0 && ++index[d] === size[d]; d--) index[d] = 0;
    }
    return out;
  };
  return { kernelName: 'Slice', backendName: 'wasm', kernelFunc: kernelFunc as unknown as KernelFunc };
}
