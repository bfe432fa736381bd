/**
 * The engine's numerics on every backend under test (test/globalSetup.ts: wasm and cpu, webgpu when
 * an adapter is present, or only ADVSIEVE_BACKEND when set), each against the cpu backend as the
 * reference, with the same weights and inputs. Tolerance: 1e-4 absolute on probabilities, 1e-3
 * relative to the largest reference magnitude elsewhere (float32, other summation orders, GPU
 * shaders' fused multiply-adds).
 */
import * as tf from '@tensorflow/tfjs';
import { InferenceModel } from '../../src/engine/model';
import { backendsUnderTest, maxAbsDiff, onBackend, randomValues, setUpBackends } from '../helpers/backends';
import { BUNDLED_MODEL_DIR, fixtureLabels, fixturePixels } from '../helpers/fixtures';

const REL = 1e-3;

function expectRelClose(actual: number[], expected: number[], rel = REL): void {
  const scale = Math.max(1e-6, ...expected.map(Math.abs));
  expect(maxAbsDiff(actual, expected) / scale).toBeLessThan(rel);
}

// One copy of the model per backend, its weights created there: tfjs moves data between backends
// on demand, but only synchronously, which WebGPU cannot do in Node.
const models: Record<string, InferenceModel> = {};
let images: Float32Array;
const N = 8;

beforeAll(async () => {
  await setUpBackends();
  for (const b of new Set([...backendsUnderTest(), 'cpu'])) {
    await tf.setBackend(b);
    models[b] = await InferenceModel.load(BUNDLED_MODEL_DIR);
  }
  await tf.setBackend('wasm');
  const fx = fixtureLabels().slice(0, N);
  images = new Float32Array(N * 784);
  for (const [i, f] of fx.entries()) images.set(await fixturePixels(f.file), i * 784);
});

afterAll(() => Object.values(models).forEach((m) => m.dispose()));

describe.each(backendsUnderTest())('on %s', (backend) => {
  test("the reference model's forward pass (probabilities, logits, activations) matches cpu", async () => {
    const run = (b: string) => () => {
      const out = models[b].forward(tf.tensor4d(images, [N, 28, 28, 1]));
      return [out.probs, out.logits, out.activations.conv1, out.activations.conv2, out.activations.fc1];
    };
    const [got, ref] = [await onBackend(backend, run(backend)), await onBackend('cpu', run('cpu'))];
    expect(maxAbsDiff(got[0], ref[0])).toBeLessThan(1e-4);
    for (let k = 1; k < ref.length; k++) expectRelClose(got[k], ref[k]);
  });

  test('input gradients of the reference model match cpu', async () => {
    const labels = new Int32Array(N).map((_, i) => (i * 3) % 10);
    // Max pooling's gradient goes to one maximum of each window, and which one among equal values
    // is each backend's choice (cpu and our wasm kernel: the first; WebGPU's shader: another). The
    // fixtures' black backgrounds tie whole windows, so a little noise separates the values.
    const noise = randomValues(N * 784, 5);
    const noisy = images.map((v, i) => v + 0.01 * noise[i]);
    const run = (b: string) => () => models[b].inputGradient(tf.tensor4d(noisy, [N, 28, 28, 1]), labels);
    expectRelClose((await onBackend(backend, run(backend)))[0], (await onBackend('cpu', run('cpu')))[0]);
  });

  test.each([
    [1, 'same'],
    [2, 'same'],
    [2, 'valid'],
  ] as const)(
    "conv gradients (stride %i, %s padding) and a training step's weight gradients match cpu",
    async (stride, pad) => {
      const xv = randomValues(3 * 11 * 11 * 2, 31 + stride);
      const kv = randomValues(3 * 3 * 2 * 5, 32);
      const run = () => {
        const x = tf.tensor4d(xv, [3, 11, 11, 2]);
        const k = tf.tensor4d(kv, [3, 3, 2, 5]);
        const loss = (a: tf.Tensor, b: tf.Tensor) =>
          tf.mean(
            tf.square(tf.maxPool(tf.relu(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad)), 2, 2, 'same')),
          );
        return tf.grads(loss)([x, k]);
      };
      const [got, ref] = [await onBackend(backend, run), await onBackend('cpu', run)];
      expectRelClose(got[0], ref[0]);
      expectRelClose(got[1], ref[1]);
    },
  );
});
