/**
 * Cast for the wasm backend, in front of the stock kernel: a cast to the dtype the tensor already
 * has shares its memory, as Identity.ts does. tfjs 4.22's copies it, and tfjs-core's Relu gradient
 * casts its float32 step to float32: a copy of every ReLU's activation in a MobileNetV2 gradient.
 */
import { CastAttrs, CastInputs, KernelBackend, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';

export function makeCastConfig(stock: KernelConfig): KernelConfig {
  const kernelFunc = (args: { inputs: CastInputs; backend: KernelBackend; attrs: CastAttrs }): TensorInfo => {
    const x = args.inputs.x as TensorInfo;
    if (x.dtype !== args.attrs.dtype || x.dtype === 'string') return stock.kernelFunc(args as never) as TensorInfo;
    (args.backend as KernelBackend & { incRef(dataId: object): void }).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
  return { kernelName: 'Cast', backendName: 'wasm', kernelFunc: kernelFunc as unknown as KernelFunc };
}
