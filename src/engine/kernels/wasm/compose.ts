/**
 * Composes a kernel out of other kernels of the same backend. Kernels cannot call tf ops (those
 * would be taped and tracked as user tensors); they call kernel functions directly, the way the
 * backends' own composite kernels do, and free every intermediate they made.
 */
import {
  backend_util,
  getKernel,
  KernelBackend,
  NamedAttrMap,
  NamedTensorInfoMap,
  TensorInfo,
} from '@tensorflow/tfjs-core';

/** The parts of tfjs-wasm's BackendWasm that hand-written kernels use to read and write its heap. */
export interface WasmHeapBackend extends KernelBackend {
  makeOutput(shape: number[], dtype: string): TensorInfo;
  /** A view of the tensor's data in the wasm heap; take it after the last makeOutput (growth detaches). */
  typedArrayFromHeap(info: TensorInfo): Float32Array;
}

export class KernelComposer {
  private readonly intermediates: TensorInfo[] = [];

  constructor(
    private readonly backend: KernelBackend,
    private readonly backendName: string,
  ) {}

  /** Runs `kernelName` on this backend; its output is freed by `dispose()` unless `keep`-ed. */
  run(kernelName: string, inputs: NamedTensorInfoMap, attrs: NamedAttrMap = {}): TensorInfo {
    const kernel = getKernel(kernelName, this.backendName);
    if (!kernel) throw new Error(`kernel ${kernelName} is not registered for ${this.backendName}`);
    const out = kernel.kernelFunc({ inputs, attrs, backend: this.backend }) as TensorInfo | TensorInfo[];
    const info = Array.isArray(out) ? out[0] : out;
    this.intermediates.push(info);
    return info;
  }

  reshape(x: TensorInfo, shape: number[]): TensorInfo {
    return this.run('Reshape', { x }, { shape });
  }

  transpose(x: TensorInfo, perm: number[]): TensorInfo {
    return this.run('Transpose', { x }, { perm });
  }

  /** Makes an output on the heap (not zeroed) that `dispose()` frees unless it is `keep`-ed. */
  makeOutput(shape: number[], dtype: string): TensorInfo {
    const info = (this.backend as WasmHeapBackend).makeOutput(shape, dtype);
    this.intermediates.push(info);
    return info;
  }

  /** Removes `out` from the intermediates so that it survives `dispose()`. */
  keep(out: TensorInfo): TensorInfo {
    const i = this.intermediates.lastIndexOf(out);
    if (i >= 0) this.intermediates.splice(i, 1);
    return out;
  }

  dispose(): void {
    for (const t of this.intermediates) this.backend.disposeData(t.dataId);
    this.intermediates.length = 0;
  }
}

/**
 * The convolution geometry of a conv gradient kernel, NHWC only (wasm's Conv2D has no other
 * layout); dilation 1, as tfjs's conv gradients require.
 */
export function nhwcConvInfo(
  kernelName: string,
  xShape: number[],
  filterShape: number[],
  attrs: {
    strides: number | [number, number];
    pad: backend_util.ExplicitPadding | 'valid' | 'same' | number;
    dataFormat?: string;
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  },
): backend_util.Conv2DInfo {
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') {
    throw new Error(`wasm ${kernelName} supports dataFormat NHWC only; got ${attrs.dataFormat}`);
  }
  return backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
}

/**
 * dy [n, oh, ow, co] of a stride-(sh, sw) convolution laid out for the stride-1 correlation that is
 * its input gradient: dilated (dy at multiples of the stride, zeros between: a reshape + pad), cut
 * where the correlation's bottom or right padding would be negative, and that padding
 * ([top, bottom], [left, right]) for the correlation to produce the input's h × w:
 *   dx[i] = Σ_k dyd[i + pad_before − (K−1) + k] · W[K−1−k]
 * Conv2DBackpropInput and DepthwiseConv2dNativeBackpropInput both rest on it.
 */
export function dilatedForInputGradient(
  c: KernelComposer,
  kernelName: string,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
): { dyd: TensorInfo; pad: [[number, number], [number, number]] } {
  const { batchSize: n, inHeight: h, inWidth: w, outHeight: oh, outWidth: ow } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const co = dy.shape[3];
  let dyd = dy;
  if (sh > 1 || sw > 1) {
    // The trailing (s−1) zero rows/cols are accounted for in the bottom/right padding below.
    const six = c.reshape(dy, [n, oh, 1, ow, 1, co]);
    const paddings = [
      [0, 0],
      [0, 0],
      [0, sh - 1],
      [0, 0],
      [0, sw - 1],
      [0, 0],
    ];
    dyd = c.reshape(c.run('PadV2', { x: six }, { paddings, constantValue: 0 }), [n, oh * sh, ow * sw, co]);
  }
  const top = kh - 1 - info.padInfo.top;
  const left = kw - 1 - info.padInfo.left;
  // The dilated length (with trailing zeros) is oh·sh; the correlation must produce h rows.
  const bottom = h + kh - 1 - top - oh * sh;
  const right = w + kw - 1 - left - ow * sw;
  if (top < 0 || left < 0) throw new Error(`${kernelName}: padding larger than the filter is not supported`);
  if (bottom < 0 || right < 0) {
    const size = [n, oh * sh + Math.min(bottom, 0), ow * sw + Math.min(right, 0), co];
    dyd = c.run('Slice', { x: dyd }, { begin: [0, 0, 0, 0], size });
  }
  return {
    dyd,
    pad: [
      [top, Math.max(bottom, 0)],
      [left, Math.max(right, 0)],
    ],
  };
}
