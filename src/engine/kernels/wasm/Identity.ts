/**
 * Identity for the wasm backend: the output shares the input's memory under a reference count, as
 * wasm's own Reshape does and Identity does on cpu and webgl. tfjs 4.22's wasm Identity copies,
 * and the gradient tape clones every tensor a gradient saves (saveTensorsForBackwardMode): in a
 * MobileNetV2 input gradient at batch 8, 600 copies, ~5% of its time and 8% of its peak heap
 * (2.56 → 2.35 GiB; the rest is the tape's: every activation and its gradient live until the
 * backward pass ends). Sharing is safe because no kernel writes into its inputs; strings keep
 * the stock kernel.
 */
import { IdentityInputs, KernelBackend, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';

export function makeIdentityConfig(stock: KernelConfig): KernelConfig {
  const kernelFunc = (args: { inputs: IdentityInputs; backend: KernelBackend }): TensorInfo => {
    const x = args.inputs.x as TensorInfo;
    if (x.dtype === 'string') return stock.kernelFunc(args as never) as TensorInfo;
    (args.backend as KernelBackend & { incRef(dataId: object): void }).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
  return { kernelName: 'Identity', backendName: 'wasm', kernelFunc: kernelFunc as unknown as KernelFunc };
}
