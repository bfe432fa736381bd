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
