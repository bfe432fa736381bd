/**
 * Conv2D layers run unfused under a tape (src/engine/unfusedUnderTape.ts): on a small random
 * MobileNet-like model (zero padding, strided conv, batch norm, ReLU6, depthwise conv, projection,
 * residual add, a conv with bias and relu, pooling, dense), the input gradient equals the fused
 * model's and the cpu backend's, computes no filter gradient, and the forward pass still runs the
 * fused kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { unfuseConvolutionsUnderTape } from '../../src/engine/unfusedUnderTape';
import { maxAbsDiff, onBackend, randomValues, setUpBackends } from '../helpers/backends';

const N = 3;
const SHAPE = [16, 16, 3] as const;

function mobileNetLike(): tf.LayersModel {
  const input = tf.input({ shape: [...SHAPE] });
  const bnRelu6 = (t: tf.SymbolicTensor) =>
    tf.layers.reLU({ maxValue: 6 }).apply(tf.layers.batchNormalization().apply(t)) as tf.SymbolicTensor;
  const padded = tf.layers
    .zeroPadding2d({
      padding: [
        [0, 1],
        [0, 1],
      ],
    })
    .apply(input) as tf.SymbolicTensor;
  const stem = bnRelu6(
    tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, useBias: false }).apply(padded) as tf.SymbolicTensor,
  );
  const expanded = bnRelu6(
    tf.layers.conv2d({ filters: 16, kernelSize: 1, useBias: false }).apply(stem) as tf.SymbolicTensor,
  );
  const depthwise = bnRelu6(
    tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false }).apply(expanded) as tf.SymbolicTensor,
  );
  const projected = tf.layers
    .batchNormalization()
    .apply(tf.layers.conv2d({ filters: 8, kernelSize: 1, useBias: false }).apply(depthwise)) as tf.SymbolicTensor;
  const sum = tf.layers.add().apply([stem, projected]) as tf.SymbolicTensor;
  const head = tf.layers
    .conv2d({ filters: 12, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' })
    .apply(sum) as tf.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({}).apply(head) as tf.SymbolicTensor;
  const logits = tf.layers.dense({ units: 5 }).apply(pooled) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits });
}

/** Two copies of the model with the same seeded weights (batch norm variances positive). */
function twins(): [tf.LayersModel, tf.LayersModel] {
  const a = mobileNetLike();
  const b = mobileNetLike();
  const weights = a.getWeights().map((w, i) => {
    const v = randomValues(w.size, 100 + i);
    if (/moving_variance|gamma/.test(a.weights[i].name)) v.forEach((x, j) => (v[j] = 0.5 + Math.abs(x)));
    return tf.tensor(v, w.shape);
  });
  a.setWeights(weights);
  b.setWeights(weights);
  tf.dispose(weights);
  return [a, b];
}

const xv = randomValues(N * SHAPE[0] * SHAPE[1] * SHAPE[2], 7).map((v) => (v + 1) / 2);
const labels = [0, 3, 4];

function inputGradient(model: tf.LayersModel): tf.Tensor {
  return tf.tidy(() => {
    const target = tf.oneHot(tf.tensor1d(labels, 'int32'), 5);
    return tf.grad((x: tf.Tensor) => tf.losses.softmaxCrossEntropy(target, model.apply(x) as tf.Tensor))(
      tf.tensor4d(xv, [N, ...SHAPE]),
    );
  });
}

async function kernelCounts(f: () => tf.Tensor): Promise<Map<string, number>> {
  const profile = await tf.profile(() => {
    const t = f();
    t.dataSync();
    t.dispose();
  });
  const counts = new Map<string, number>();
  for (const k of profile.kernels) counts.set(k.name, (counts.get(k.name) ?? 0) + 1);
  return counts;
}

let fused: tf.LayersModel;
let unfused: tf.LayersModel;

beforeAll(async () => {
  await setUpBackends();
  [fused, unfused] = twins();
  expect(unfuseConvolutionsUnderTape(unfused)).toBe(4);
});
afterAll(() => {
  fused.dispose();
  unfused.dispose();
});

test('the input gradient equals the fused model’s on wasm and the cpu backend’s', async () => {
  const [ours] = await onBackend('wasm', () => inputGradient(unfused));
  const [reference] = await onBackend('wasm', () => inputGradient(fused));
  const [cpu] = await onBackend('cpu', () => inputGradient(fused));
  const scale = Math.max(...cpu.map(Math.abs));
  expect(scale).toBeGreaterThan(0);
  expect(maxAbsDiff(ours, reference) / scale).toBeLessThan(1e-5);
  expect(maxAbsDiff(ours, cpu) / scale).toBeLessThan(1e-4);
});

test('no filter gradient is computed: Conv2D and Conv2DBackpropInput run instead of the fused customGrad', async () => {
  const before = await kernelCounts(() => inputGradient(fused));
  // The three linear convs; the relu one tfjs-core already unfuses under a tape.
  expect(before.get('Conv2DBackpropFilter')).toBe(3);
  const after = await kernelCounts(() => inputGradient(unfused));
  expect(after.get('Conv2DBackpropFilter')).toBeUndefined();
  expect(after.get('FusedConv2D')).toBeUndefined();
  expect(after.get('Conv2D')).toBe(4);
  expect(after.get('Conv2DBackpropInput')).toBe(4);
});

test('outside a tape the layers keep their fused kernel and their outputs', async () => {
  const x = () => tf.tensor4d(xv, [N, ...SHAPE]);
  const counts = await kernelCounts(() => tf.tidy(() => unfused.predict(x()) as tf.Tensor));
  expect(counts.get('FusedConv2D')).toBe(4);
  const [ours] = await onBackend('wasm', () => tf.tidy(() => unfused.predict(x()) as tf.Tensor));
  const [reference] = await onBackend('wasm', () => tf.tidy(() => fused.predict(x()) as tf.Tensor));
  expect(ours).toEqual(reference);
});

test('the unfused gradient leaks no tensors', () => {
  inputGradient(unfused).dispose();
  const before = tf.memory().numTensors;
  inputGradient(unfused).dispose();
  expect(tf.memory().numTensors).toBe(before);
});
