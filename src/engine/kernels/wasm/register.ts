/**
 * The kernels advsieve adds to or replaces in tfjs-backend-wasm 4.22, registered from one explicit
 * list (as tfjs's own register_all_kernels.ts does), not by side-effect imports. Wrappers take the
 * stock kernel they fall back to for the cases they do not speed up.
 */
import {
  findBackend,
  getKernel,
  GradConfig,
  KernelConfig,
  registerGradient,
  registerKernel,
  unregisterKernel,
} from '@tensorflow/tfjs-core';
import { clipByValueGradientConfig } from '../gradients/ClipByValue_grad';
import { fusedBatchNormGradientConfig } from '../gradients/FusedBatchNorm_grad';
import { makeBatchMatMulConfig } from './BatchMatMul';
import { makeCastConfig } from './Cast';
import { clipByValueGradConfig } from './ClipByValueGrad';
import { conv2DBackpropFilterConfig } from './Conv2DBackpropFilter';
import { conv2DBackpropInputConfig } from './Conv2DBackpropInput';
import { depthwiseConv2dNativeBackpropInputConfig } from './DepthwiseConv2dNativeBackpropInput';
import { makeIdentityConfig } from './Identity';
import { makeMeanConfig, makeSumConfig } from './LeadingAxesReduce';
import { maxPoolGradConfig } from './MaxPoolGrad';
import { makeSliceConfig } from './Slice';
import { tileConfig } from './Tile';

type Maker = (stock: KernelConfig) => KernelConfig;

/** Kernels that wasm lacks or runs slowly, replaced outright. */
export const WASM_KERNELS: readonly KernelConfig[] = [
  clipByValueGradConfig,
  conv2DBackpropFilterConfig,
  conv2DBackpropInputConfig,
  depthwiseConv2dNativeBackpropInputConfig,
  maxPoolGradConfig,
  tileConfig,
];

/** Kernels given a fast path in front of the stock one. */
export const WASM_KERNEL_WRAPPERS: Readonly<Record<string, Maker>> = {
  BatchMatMul: makeBatchMatMulConfig,
  Sum: makeSumConfig,
  Mean: makeMeanConfig,
  Identity: makeIdentityConfig,
  Slice: makeSliceConfig,
  Cast: makeCastConfig,
};

/**
 * Gradients replacing tfjs-core's (the gradient registry serves every backend): lazier ones, and
 * ones that run a kernel above where the active backend has it and tfjs-core's ops where not.
 */
export const GRADIENTS: readonly GradConfig[] = [clipByValueGradientConfig, fusedBatchNormGradientConfig];

let registered = false;
/** The stock kernels replaced (undefined where wasm had none), to compare against in benchmarks. */
const stockKernels = new Map<string, KernelConfig | undefined>();
const ours = new Map<string, KernelConfig>();

function swap(config: KernelConfig): void {
  // registerKernel refuses duplicates: the registered one is unregistered first.
  if (getKernel(config.kernelName, 'wasm')) unregisterKernel(config.kernelName, 'wasm');
  registerKernel(config);
}

/** Registers advsieve's wasm kernels; call before the wasm backend initialises. */
export function registerWasmKernels(): void {
  if (registered) return;
  for (const config of WASM_KERNELS) {
    stockKernels.set(config.kernelName, getKernel(config.kernelName, 'wasm'));
    ours.set(config.kernelName, config);
    swap(config);
  }
  for (const [name, make] of Object.entries(WASM_KERNEL_WRAPPERS)) {
    const stock = getKernel(name, 'wasm');
    if (!stock) throw new Error(`tfjs-backend-wasm has no ${name} kernel to wrap`);
    stockKernels.set(name, stock);
    // The stock kernel binds its wasm function in setupFunc, run when the backend initialises.
    const wrapped = { ...make(stock), setupFunc: stock.setupFunc, disposeFunc: stock.disposeFunc };
    ours.set(name, wrapped);
    swap(wrapped);
  }
  for (const config of GRADIENTS) registerGradient(config);
  registered = true;
}

/**
 * Benchmarks only: switches between advsieve's kernels and tfjs-wasm's stock ones (a kernel
 * that wasm lacks, such as Conv2DBackpropFilter, stays ours, and so do the GRADIENTS). The
 * backend must be initialised.
 */
export function useStockWasmKernels(stock: boolean): void {
  const backend = findBackend('wasm');
  if (!backend) throw new Error('the wasm backend is not initialised');
  for (const [name, config] of ours) {
    const original = stockKernels.get(name);
    if (!original) continue;
    // A stock kernel replaced before the backend started never had its wasm function bound.
    if (stock) original.setupFunc?.(backend);
    swap(stock ? original : config);
  }
}
