/**
 * ClipByValueGrad for the wasm backend (advsieve's kernel, for the gradient in
 * ../gradients/ClipByValue_grad.ts): dy where clipValueMin ≤ x ≤ clipValueMax, else 0, in one
 * pass over the heap. A NaN in x compares false and gets 0, as tfjs-core's ops give. The select is
 * a bit mask over dy's bits (a branch mispredicts on activations, 2.5× slower; dy · mask would turn
 * an infinite dy into NaN where Select gives 0).
 */
import { ClipByValueAttrs, KernelBackend, KernelConfig, KernelFunc, TensorInfo, util } from '@tensorflow/tfjs-core';
import { CLIP_BY_VALUE_GRAD } from '../gradients/ClipByValue_grad';
import { WasmHeapBackend } from './compose';

export function clipByValueGrad(args: {
  inputs: { dy: TensorInfo; x: TensorInfo };
  backend: KernelBackend;
  attrs: ClipByValueAttrs;
}): TensorInfo {
  const backend = args.backend as WasmHeapBackend;
  const { dy, x } = args.inputs;
  if (x.dtype !== 'float32' || dy.dtype !== 'float32' || !util.arraysEqual(x.shape, dy.shape)) {
    throw new Error(
      `wasm ${CLIP_BY_VALUE_GRAD} takes float32 dy and x of one shape; got ${dy.dtype} [${dy.shape}] and ${x.dtype} [${x.shape}]`,
    );
  }
  const { clipValueMin: lo, clipValueMax: hi } = args.attrs;
  const out = backend.makeOutput(x.shape, 'float32');
  // Views after makeOutput, which may grow (and detach) the heap.
  const xs = backend.typedArrayFromHeap(x);
  const bits = (t: TensorInfo) => {
    const f = backend.typedArrayFromHeap(t);
    return new Uint32Array(f.buffer, f.byteOffset, f.length);
  };
  const g = bits(dy);
  const dx = bits(out);
  for (let i = 0; i < dx.length; i++) {
    const v = xs[i];
    dx[i] = g[i] & -(+(v >= lo) & +(v <= hi));
  }
  return out;
}

export const clipByValueGradConfig: KernelConfig = {
  kernelName: CLIP_BY_VALUE_GRAD,
  backendName: 'wasm',
  kernelFunc: clipByValueGrad as unknown as KernelFunc,
};
