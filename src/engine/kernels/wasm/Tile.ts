/**
 * Tile for the wasm backend. tfjs 4.22's wasm Tile falls back to an element-by-element loop; batch
 * norm's gradient tiles the per-channel scale over every activation (N·H·W·C elements), which made
 * Tile the most expensive kernel of a training step.
 *
 * Tiling is a broadcast: with reps r and shape s, the output viewed as [r0, s0, r1, s1, …] equals
 * x viewed as [1, s0, 1, s1, …] times ones [r0, 1, r1, 1, …]; a dimension with r = 1 keeps only s,
 * one with s = 1 keeps only r. The multiply runs in wasm's broadcasting binary kernel.
 */
import {
  KernelBackend,
  KernelConfig,
  KernelFunc,
  TensorInfo,
  TileAttrs,
  TileInputs,
  util,
} from '@tensorflow/tfjs-core';
import { KernelComposer } from './compose';

export function tile(args: { inputs: TileInputs; backend: KernelBackend; attrs: TileAttrs }): TensorInfo {
  const x = args.inputs.x as TensorInfo;
  const reps = args.attrs.reps;
  const outShape = x.shape.map((s, d) => s * reps[d]);
  const c = new KernelComposer(args.backend, 'wasm');
  try {
    if (x.dtype === 'string' || x.dtype === 'bool' || util.sizeFromShape(outShape) === 0) {
      throw new Error(`wasm Tile supports numeric dtypes; got ${x.dtype}`);
    }
    const xView: number[] = [];
    const onesView: number[] = [];
    x.shape.forEach((s, d) => {
      if (reps[d] > 1) {
        xView.push(1);
        onesView.push(reps[d]);
      }
      if (s > 1 || reps[d] === 1) {
        xView.push(s);
        onesView.push(1);
      }
    });
    const ones = c.run('Fill', {}, { shape: onesView, value: 1, dtype: x.dtype });
    const product = c.run('Multiply', { a: c.reshape(x, xView), b: ones });
    return c.keep(c.reshape(product, outShape));
  } finally {
    c.dispose();
  }
}

export const tileConfig: KernelConfig = {
  kernelName: 'Tile',
  backendName: 'wasm',
  kernelFunc: tile as unknown as KernelFunc,
};
