/** Whether the WebGPU probe may run at all: only where a GPU device node exists (Linux). */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { gpuDeviceVisible } from '../../src/engine/webgpu';

describe('gpuDeviceVisible (Linux device nodes)', () => {
  let dev: string;
  beforeEach(() => (dev = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-dev-'))));
  afterEach(() => fs.rmSync(dev, { recursive: true, force: true }));

  test('no device nodes: no GPU (only a software adapter could be found)', () => {
    fs.writeFileSync(path.join(dev, 'null'), '');
    fs.mkdirSync(path.join(dev, 'dri'));
    fs.writeFileSync(path.join(dev, 'dri', 'card0'), ''); // a display-only node is not a render node
    expect(gpuDeviceVisible(dev, 'linux')).toBe(false);
  });

  test.each([['dri/renderD128'], ['nvidia0'], ['dxg']])('%s: a GPU', (node) => {
    fs.mkdirSync(path.dirname(path.join(dev, node)), { recursive: true });
    fs.writeFileSync(path.join(dev, node), '');
    expect(gpuDeviceVisible(dev, 'linux')).toBe(true);
  });

  test('other platforms: Dawn is asked (Metal, D3D12 have no device nodes to look for)', () => {
    expect(gpuDeviceVisible(dev, 'darwin')).toBe(true);
  });

  test('nvidiactl alone (driver loaded, no card) is not a GPU', () => {
    fs.writeFileSync(path.join(dev, 'nvidiactl'), '');
    expect(gpuDeviceVisible(dev, 'linux')).toBe(false);
  });
});
