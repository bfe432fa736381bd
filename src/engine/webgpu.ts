/**
 * The WebGPU backend in Node: Dawn's Node binding (npm `webgpu`, which ships `dawn.node` inside the
 * package) provides `navigator.gpu`, and tfjs-backend-webgpu runs on the adapter it returns, over
 * Vulkan (NVIDIA, AMD, Intel, or Mesa's llvmpipe), Metal or Direct3D 12.
 *
 * We pick the adapter ourselves rather than letting tfjs ask for one, so that a software adapter
 * (llvmpipe, SwiftShader: `isFallbackAdapter`) is refused unless configuration allows it: on a
 * CPU host it is several times slower than the wasm backend.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as path from 'path';

export interface AdapterDescription {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  /** A software rasteriser (llvmpipe, SwiftShader), not a GPU. */
  readonly software: boolean;
}

interface DawnModule {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

/** GPUAdapter.info as Dawn provides it (newer than the @webgpu/types that tfjs 4.22 pins). */
interface AdapterInfo {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  readonly isFallbackAdapter?: boolean;
}

const SOFTWARE_NAMES = /llvmpipe|lavapipe|softpipe|swiftshader/i;

/**
 * Loads dawn.node directly: the `webgpu` package's index is an ES module, which jest (and older
 * Node 20 releases) cannot `require`; the native addon itself is plain CommonJS.
 */
function loadDawn(): DawnModule {
  const dir = path.dirname(require.resolve('webgpu'));
  const arch = process.platform === 'darwin' ? 'universal' : process.arch;
  return require(path.join(dir, 'dist', `${process.platform}-${arch}`, 'dawn.node')) as DawnModule;
}

export function describeAdapter(adapter: GPUAdapter): AdapterDescription {
  const info = (adapter as unknown as { info: AdapterInfo }).info;
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`;
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    software: Boolean(info.isFallbackAdapter) || info.architecture === 'software' || SOFTWARE_NAMES.test(text),
  };
}

/**
 * Whether this machine shows a GPU to user space at all. On Linux a hardware adapter needs a
 * device node: a DRM render node (/dev/dri/renderD*: AMD, Intel, NVIDIA's open driver), NVIDIA's
 * own (/dev/nvidia0…) or WSL's (/dev/dxg). Without one only a software adapter can be found, and
 * merely asking Dawn prints its driver warnings on stderr ("Couldn't load Vulkan",
 * "…artificially reduced") on every start. Elsewhere (Metal, D3D12) Dawn is asked.
 */
export function gpuDeviceVisible(dev = '/dev', platform: NodeJS.Platform = process.platform): boolean {
  if (platform !== 'linux') return true;
  const list = (dir: string) => {
    try {
      return fs.readdirSync(dir);
    } catch {
      return [];
    }
  };
  if (list(path.join(dev, 'dri')).some((n) => n.startsWith('renderD'))) return true;
  return list(dev).some((n) => /^nvidia\d+$/.test(n) || n === 'dxg');
}

/** Finds the adapter, checks it, and registers tfjs's WebGPU backend on it as 'webgpu'. */
export async function registerWebGpuBackend(allowSoftware: boolean): Promise<AdapterDescription> {
  // Only a software adapter could be found: refuse without loading Dawn (and its warnings).
  if (!allowSoftware && !gpuDeviceVisible()) {
    throw new Error('no GPU device node (/dev/dri/renderD*, /dev/nvidia*): no hardware WebGPU adapter to find');
  }
  const dawn = loadDawn();
  // tfjs-backend-webgpu refers to GPUBufferUsage, GPUMapMode, … as globals, as in a browser.
  Object.assign(globalThis, dawn.globals);
  const gpu = dawn.create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no WebGPU adapter (no Vulkan, Metal or D3D12 driver found)');
  const described = describeAdapter(adapter);
  if (described.software && !allowSoftware) {
    throw new Error(
      `only a software adapter was found (${described.description}); ` +
        'set ADVSIEVE_WEBGPU_ALLOW_SOFTWARE=1 to use it',
    );
  }
  const limits = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: adapter.features.has('timestamp-query') ? ['timestamp-query'] : [],
    // tfjs sizes its buffers and workgroups from these; the defaults are far below a GPU's.
    requiredLimits: {
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
    },
  });
  const g = globalThis as { navigator?: { gpu?: GPU } };
  if (!g.navigator) g.navigator = { gpu };
  const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend(
    'webgpu',
    () => new WebGPUBackend(device, (adapter as unknown as { info: GPUAdapterInfo }).info),
    3,
  );
  return described;
}
