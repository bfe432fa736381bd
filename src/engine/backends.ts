/**
 * Backend selection. The engine prefers, in order:
 *   tfjs-node-gpu (CUDA) → webgpu (Dawn; a hardware adapter only) → tfjs-node (libtensorflow, CPU)
 *   → wasm (XNNPACK) → cpu (plain JS).
 * The two native packages download libtensorflow when installed, which fails on network-closed
 * hosts, so they are optional peer dependencies: used when `require` finds them, skipped otherwise.
 * `ADVSIEVE_BACKEND` (or the `backend` option) forces one; a software WebGPU adapter (llvmpipe,
 * SwiftShader) is used only with ADVSIEVE_WEBGPU_ALLOW_SOFTWARE=1.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as path from 'path';
import { registerWasmKernels } from './kernels/wasm/register';
import { AdapterDescription, registerWebGpuBackend } from './webgpu';

export const BACKEND_NAMES = ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendInfo {
  /** The advsieve name of the backend that was chosen. */
  readonly name: BackendName;
  /** tfjs's own name for it (`tensorflow`, `wasm`, `cpu`). */
  readonly tfjsName: string;
  /** Each backend tried before the chosen one, with the reason it was skipped. */
  readonly skipped: ReadonlyArray<{ name: BackendName; reason: string }>;
  /** The GPU adapter, for webgpu. */
  readonly adapter?: AdapterDescription;
  /** Whether the backend runs on a GPU (one worker with large batches suits it). */
  readonly gpu: boolean;
}

/** ADVSIEVE_WEBGPU_ALLOW_SOFTWARE=1 (or true) lets webgpu run on a software adapter. */
export function softwareAdapterAllowed(): boolean {
  return /^(1|true|yes)$/i.test(process.env.ADVSIEVE_WEBGPU_ALLOW_SOFTWARE ?? '');
}

let active: BackendInfo | undefined;

/** Directory holding tfjs-backend-wasm's `.wasm` binaries, found through Node's resolver. */
export function wasmDir(): string {
  const entry = require.resolve('@tensorflow/tfjs-backend-wasm');
  // entry is <pkg>/dist/tf-backend-wasm.node.js; the binaries sit beside it.
  return path.dirname(entry) + path.sep;
}

/**
 * Loads and registers one backend with tfjs without making it the active one (initBackend does
 * that); tests use it to run the same computation on several backends.
 */
export async function loadBackend(name: BackendName): Promise<{ tfjsName: string; adapter?: AdapterDescription }> {
  switch (name) {
    case 'tensorflow-gpu':
      // Registers the 'tensorflow' backend on CUDA; throws MODULE_NOT_FOUND when not installed.
      require('@tensorflow/tfjs-node-gpu');
      return { tfjsName: 'tensorflow' };
    case 'webgpu':
      return { tfjsName: 'webgpu', adapter: await registerWebGpuBackend(softwareAdapterAllowed()) };
    case 'tensorflow':
      require('@tensorflow/tfjs-node');
      return { tfjsName: 'tensorflow' };
    case 'wasm': {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      // Node's WASM loader reads files, never the network: point it at node_modules.
      wasm.setWasmPaths(wasmDir());
      registerWasmKernels();
      return { tfjsName: 'wasm' };
    }
    case 'cpu':
      await import('@tensorflow/tfjs-backend-cpu');
      return { tfjsName: 'cpu' };
  }
}

function parseBackend(value: string): BackendName {
  if ((BACKEND_NAMES as readonly string[]).includes(value)) return value as BackendName;
  throw new Error(`ADVSIEVE_BACKEND must be one of ${BACKEND_NAMES.join(', ')}; got '${value}'`);
}

/**
 * Picks and initialises a backend, once per thread. With `requested` (or ADVSIEVE_BACKEND) set,
 * only that backend is tried and a failure is an error; otherwise the first that loads wins.
 */
export async function initBackend(requested = process.env.ADVSIEVE_BACKEND): Promise<BackendInfo> {
  if (active) {
    if (requested && parseBackend(requested) !== active.name) {
      throw new Error(`backend already initialised as ${active.name}; cannot switch to ${requested}`);
    }
    return active;
  }
  // Production mode: no per-op debug checks, and tfjs's console banners stay off stderr.
  tf.enableProdMode();
  const order: BackendName[] = requested ? [parseBackend(requested)] : [...BACKEND_NAMES];
  const skipped: { name: BackendName; reason: string }[] = [];
  for (const name of order) {
    try {
      const { tfjsName, adapter } = await loadBackend(name);
      if (!(await tf.setBackend(tfjsName))) throw new Error(`tf.setBackend('${tfjsName}') returned false`);
      await tf.ready();
      active = {
        name,
        tfjsName,
        skipped,
        adapter,
        gpu: name === 'tensorflow-gpu' || (name === 'webgpu' && !adapter?.software),
      };
      return active;
    } catch (err) {
      const reason =
        (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND'
          ? 'not installed'
          : String((err as Error).message ?? err);
      if (requested) throw new Error(`backend ${name} could not start: ${reason}`);
      skipped.push({ name, reason });
    }
  }
  throw new Error(`no backend could start: ${skipped.map((s) => `${s.name} (${s.reason})`).join('; ')}`);
}

export function activeBackend(): BackendInfo | undefined {
  return active;
}

/** One log line describing the choice, for start-up logs. */
export function describeBackend(info: BackendInfo): string {
  const skipped = info.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
  const a = info.adapter;
  const adapter = a
    ? ` on ${a.software ? 'software ' : ''}adapter ${a.vendor}/${a.architecture}/${a.device} (${a.description})`
    : '';
  return `backend ${info.name}${adapter}${skipped ? ` (skipped ${skipped})` : ''}`;
}
