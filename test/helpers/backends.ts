import * as tf from '@tensorflow/tfjs';
import { BackendName, initBackend, loadBackend } from '../../src/engine/backends';

/** The backends the backend tests run on (decided by test/globalSetup.ts). */
export function backendsUnderTest(): string[] {
  return (process.env.ADVSIEVE_TEST_BACKENDS ?? 'wasm,cpu').split(',');
}

let ready: Promise<string[]> | undefined;

/**
 * Registers every backend under test, plus wasm (with advsieve's kernels) and cpu, the reference;
 * tfjs moves tensors between backends on demand. wasm is left active.
 */
export function setUpBackends(): Promise<string[]> {
  ready ??= (async () => {
    await initBackend('wasm');
    await loadBackend('cpu');
    for (const b of backendsUnderTest()) {
      if (b !== 'wasm' && b !== 'cpu') await loadBackend(b as BackendName);
    }
    return backendsUnderTest();
  })();
  return ready;
}

/** Runs `f` on `backend`, returns its results as flat arrays (read asynchronously), restores wasm. */
export async function onBackend(backend: string, f: () => tf.Tensor | tf.Tensor[]): Promise<number[][]> {
  await tf.setBackend(backend);
  try {
    const out = f();
    const list = Array.isArray(out) ? out : [out];
    const arrays = await Promise.all(list.map(async (t) => Array.from((await t.data()) as Float32Array)));
    tf.dispose(list);
    return arrays;
  } finally {
    await tf.setBackend('wasm');
  }
}

export function maxAbsDiff(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Seeded uniform values in [-1, 1). */
export function randomValues(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
