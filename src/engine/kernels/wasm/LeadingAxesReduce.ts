/**
 * Sum and Mean over leading axes for the wasm backend. The stock kernels reduce innermost axes
 * only, so a reduction over [0, 1, 2] of an NHWC tensor (batch norm's statistics and gradients,
 * every bias gradient) first transposes the whole tensor. Viewed as a matrix X [M, C] the
 * reduction is a column sum, done here in one pass over the wasm heap with float64 accumulators.
 * (A product ones[1, M] · X was tried first: XNNPACK packs the big operand on every call and ran
 * at ~0.35 GFLOP/s.) Other reductions (inner axes, non-float dtypes) go to the stock kernel.
 */
import { KernelBackend, KernelConfig, KernelFunc, SumAttrs, SumInputs, TensorInfo, util } from '@tensorflow/tfjs-core';
import { WasmHeapBackend } from './compose';

/** The number of leading axes reduced, or 0 when `axis` is not a leading run short of the rank. */
function leadingAxes(axis: number | number[], rank: number): number {
  const axes = util.parseAxisParam(axis, new Array<number>(rank).fill(1)).sort((p, q) => p - q);
  if (axes.length === 0 || axes.length >= rank) return 0;
  return axes.every((a, i) => a === i) ? axes.length : 0;
}

function makeConfig(kernelName: 'Sum' | 'Mean', stock: KernelConfig): KernelConfig {
  const kernelFunc = (args: { inputs: SumInputs; backend: KernelBackend; attrs: SumAttrs }): TensorInfo => {
    const backend = args.backend as WasmHeapBackend;
    const x = args.inputs.x as TensorInfo;
    const k = leadingAxes(args.attrs.axis, x.shape.length);
    const m = util.sizeFromShape(x.shape.slice(0, k));
    if (k === 0 || x.dtype !== 'float32' || m === 0) return stock.kernelFunc(args as never) as TensorInfo;
    const rest = x.shape.slice(k);
    const cols = util.sizeFromShape(rest);
    const out = backend.makeOutput(args.attrs.keepDims ? [...new Array<number>(k).fill(1), ...rest] : rest, 'float32');
    const values = backend.typedArrayFromHeap(x); // after makeOutput, which may grow the heap
    const acc = new Float64Array(cols);
    for (let i = 0, off = 0; i < m; i++, off += cols) {
      for (let j = 0; j < cols; j++) acc[j] += values[off + j];
    }
    const scale = kernelName === 'Mean' ? 1 / m : 1;
    const result = backend.typedArrayFromHeap(out);
    for (let j = 0; j < cols; j++) result[j] = acc[j] * scale;
    return out;
  };
  return { kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as KernelFunc };
}

export const makeSumConfig = (stock: KernelConfig) => makeConfig('Sum', stock);
export const makeMeanConfig = (stock: KernelConfig) => makeConfig('Mean', stock);
