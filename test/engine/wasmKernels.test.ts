/**
 * Each kernel advsieve registers on wasm against the cpu backend's reference implementation, on
 * random shapes, strides 1 and 2, padding same and valid. Tolerance: 1e-4 relative to the largest
 * magnitude of the reference (float32 sums over up to a few thousand terms, in another order).
 */
import * as tf from '@tensorflow/tfjs';
import { getKernel } from '@tensorflow/tfjs-core';
import { conv2DBackpropFilter } from '../../src/engine/kernels/wasm/Conv2DBackpropFilter';
import { WASM_KERNELS, WASM_KERNEL_WRAPPERS } from '../../src/engine/kernels/wasm/register';
import { maxAbsDiff, onBackend, randomValues, setUpBackends, sizeOf } from '../helpers/backends';

const TOL = 1e-4;

function expectClose(actual: number[], expected: number[]): void {
  const scale = Math.max(1, ...expected.map(Math.abs));
  expect(maxAbsDiff(actual, expected) / scale).toBeLessThan(TOL);
}

async function compare(f: () => tf.Tensor | tf.Tensor[]): Promise<void> {
  const [wasm, cpu] = [await onBackend('wasm', f), await onBackend('cpu', f)];
  expect(wasm.length).toBe(cpu.length);
  wasm.forEach((w, i) => expectClose(w, cpu[i]));
}

beforeAll(async () => {
  await setUpBackends();
});

test('the advsieve kernels are the ones registered on wasm', () => {
  for (const k of WASM_KERNELS) expect(getKernel(k.kernelName, 'wasm')?.kernelFunc).toBe(k.kernelFunc);
  for (const name of Object.keys(WASM_KERNEL_WRAPPERS)) expect(getKernel(name, 'wasm')).toBeDefined();
});

// [batch, height, width, inChannels, filterH, filterW, outChannels]
const CONV_SHAPES: Array<[number, number, number, number, number, number, number]> = [
  [2, 9, 9, 3, 3, 3, 4],
  [1, 10, 7, 1, 5, 3, 6],
  [3, 8, 11, 5, 2, 2, 3],
  [2, 28, 28, 1, 3, 3, 8],
  [2, 6, 5, 8, 1, 1, 12], // 1×1: a matrix product at stride 1, col2im at stride 2
  [2, 11, 11, 3, 3, 3, 16], // MobileNetV2's stem, in small
];

describe.each(CONV_SHAPES)('conv gradients, x [%i,%i,%i,%i], filter [%i,%i,·,%i]', (n, h, w, ci, kh, kw, co) => {
  test.each([
    [1, 'same'],
    [1, 'valid'],
    [2, 'same'],
    [2, 'valid'],
  ] as const)('stride %i, padding %s: Conv2DBackpropFilter and Conv2DBackpropInput match cpu', async (stride, pad) => {
    const seed = n * 1000 + h * 100 + w * 10 + ci + stride;
    const xv = randomValues(n * h * w * ci, seed);
    const wv = randomValues(kh * kw * ci * co, seed + 1);
    await compare(() => {
      const x = tf.tensor4d(xv, [n, h, w, ci]);
      const filter = tf.tensor4d(wv, [kh, kw, ci, co]);
      const y = tf.conv2d(x, filter, stride, pad);
      const dy = tf.tensor(randomValues(y.size, seed + 2), y.shape);
      // The gradient of Σ conv(x, W)·dy is exactly (Conv2DBackpropInput, Conv2DBackpropFilter) at dy.
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad), dy)),
      )([x, filter]);
      return [dx, dw];
    });
  });
});

describe.each(CONV_SHAPES)(
  'Conv2DBackpropFilter above its patches limit, x [%i,%i,%i,%i], filter [%i,%i,·,%i]',
  (n, h, w, ci, kh, kw, co) => {
    // The shapes above all fit the patches matrix; larger layers take the batch-as-channels
    // convolution, forced here with a limit of 0 and compared with the patches path on wasm.
    test.each([
      [1, 'same'],
      [2, 'valid'],
    ] as const)('stride %i, padding %s: the convolution path matches the patches path', async (stride, pad) => {
      const seed = n * 1000 + h * 100 + w * 10 + ci + stride + 3;
      const byPath = await onBackend('wasm', () =>
        tf.tidy(() => {
          const x = tf.tensor4d(randomValues(n * h * w * ci, seed), [n, h, w, ci]);
          const dy = tf.tidy(() => {
            const y = tf.conv2d(x, tf.zeros([kh, kw, ci, co]), stride, pad);
            return tf.tensor(randomValues(y.size, seed + 1), y.shape);
          });
          const args = {
            inputs: { x, dy },
            backend: tf.backend(),
            attrs: { strides: stride, pad, dataFormat: 'NHWC', filterShape: [kh, kw, ci, co] },
          } as unknown as Parameters<typeof conv2DBackpropFilter>[0];
          const engine = tf.engine();
          const wrap = (info: ReturnType<typeof conv2DBackpropFilter>) =>
            engine.makeTensorFromTensorInfo(info, tf.backend()) as tf.Tensor;
          return [wrap(conv2DBackpropFilter(args)), wrap(conv2DBackpropFilter(args, 0))];
        }),
      );
      expectClose(byPath[1], byPath[0]);
    });
  },
);

// [batch, height, width, inChannels, filterH, filterW, channelMultiplier]
const DEPTHWISE_SHAPES: Array<[number, number, number, number, number, number, number]> = [
  [2, 9, 9, 3, 3, 3, 1],
  [1, 10, 7, 4, 5, 3, 1],
  [3, 8, 11, 5, 2, 2, 2],
  [2, 14, 14, 6, 3, 3, 3],
];

describe.each(DEPTHWISE_SHAPES)(
  'depthwise input gradient, x [%i,%i,%i,%i], filter [%i,%i,·,%i]',
  (n, h, w, ci, kh, kw, m) => {
    test.each([
      [1, 'same'],
      [1, 'valid'],
      [2, 'same'],
      [2, 'valid'],
    ] as const)('stride %i, padding %s: DepthwiseConv2dNativeBackpropInput matches cpu', async (stride, pad) => {
      const seed = n * 1000 + h * 100 + w * 10 + ci + stride + 7;
      const xv = randomValues(n * h * w * ci, seed);
      const wv = randomValues(kh * kw * ci * m, seed + 1);
      await compare(() => {
        const x = tf.tensor4d(xv, [n, h, w, ci]);
        const filter = tf.tensor4d(wv, [kh, kw, ci, m]);
        const y = tf.depthwiseConv2d(x, filter, stride, pad);
        const dy = tf.tensor(randomValues(y.size, seed + 2), y.shape);
        // Only the input's gradient: the filter's (DepthwiseConv2dNativeBackpropFilter) is not asked for.
        return tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.depthwiseConv2d(a as tf.Tensor4D, filter, stride, pad), dy)))(
          x,
        );
      });
    });
  },
);

test('DepthwiseConv2dNativeBackpropInput: an explicit padding and the padding of a MobileNet block (ZeroPadding2D then valid, stride 2)', async () => {
  const xv = randomValues(2 * 15 * 15 * 8, 5);
  const wv = randomValues(3 * 3 * 8, 6);
  await compare(() => {
    const filter = tf.tensor4d(wv, [3, 3, 8, 1]);
    const explicit = [
      [0, 0],
      [0, 1],
      [0, 1],
      [0, 0],
    ] as tf.backend_util.ExplicitPadding;
    return tf.grad((a: tf.Tensor) => tf.sum(tf.square(tf.depthwiseConv2d(a as tf.Tensor4D, filter, 2, explicit))))(
      tf.tensor4d(xv, [2, 15, 15, 8]),
    );
  });
});

test.each([
  [[2, 8, 8, 3], 2, 2, 'valid'],
  [[2, 9, 7, 3], 2, 2, 'valid'], // 2×2 loop, last row and column unused
  [[1, 8, 6, 5], 2, 2, 'same'], // 2×2 loop: even sizes need no padding
  [[1, 9, 7, 2], 2, 2, 'same'], // padded: the general loop
  [[1, 9, 7, 4], 3, 2, 'same'],
  [[2, 6, 6, 2], 3, 1, 'valid'],
] as const)('MaxPoolGrad on %j, window %i, stride %i, %s matches cpu', async (shape, size, stride, pad) => {
  const xv = randomValues(sizeOf(shape), 7);
  await compare(() =>
    tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(x as tf.Tensor4D, size, stride, pad), 3)))(
      tf.tensor4d(xv, [...shape]),
    ),
  );
});

test("MaxPoolGrad sends a tied window's gradient to its first maximum, as cpu does", async () => {
  // Three 2×2 windows: all tied; a tie on the diagonal; −∞ everywhere but the last position.
  const x = [1, 1, 0, 2, -Infinity, -Infinity, 1, 1, 2, 0, -Infinity, 5];
  await compare(() =>
    tf.grad((t: tf.Tensor) => tf.sum(tf.maxPool(t as tf.Tensor4D, 2, 2, 'valid')))(tf.tensor4d(x, [1, 2, 6, 1])),
  );
});

test.each([
  [
    [1, 1, 1, 5],
    [4, 3, 2, 1],
  ],
  [
    [2, 3],
    [2, 2],
  ],
  [
    [3, 1, 2],
    [1, 4, 1],
  ],
] as const)('Tile of %j by %j matches cpu', async (shape, reps) => {
  const v = randomValues(sizeOf(shape), 3);
  await compare(() => tf.tile(tf.tensor(v, [...shape]), [...reps]));
});

test.each([
  [false, false],
  [true, false],
  [false, true],
  [true, true],
])('BatchMatMul transposeA=%s transposeB=%s matches cpu', async (ta, tb) => {
  const a = randomValues(2 * 5 * 7, 11);
  const b = randomValues(2 * 7 * 3, 12);
  await compare(() =>
    tf.matMul(tf.tensor3d(a, ta ? [2, 7, 5] : [2, 5, 7]), tf.tensor3d(b, tb ? [2, 3, 7] : [2, 7, 3]), ta, tb),
  );
});

test.each([
  [[4, 5, 6, 3], [0, 1, 2], false],
  [[4, 5, 6, 3], [0], true],
  [[7, 3], [0], false],
  [[4, 5, 6, 3], [1, 2], false], // not leading: stock kernel
  [[4, 5, 6, 3], [3], true],
] as const)('Sum and Mean of %j over %j (keepDims %s) match cpu', async (shape, axes, keepDims) => {
  const v = randomValues(sizeOf(shape), 5);
  await compare(() => {
    const x = tf.tensor(v, [...shape]);
    return [tf.sum(x, [...axes], keepDims), tf.mean(x, [...axes], keepDims)];
  });
});

test.each([
  [
    [4, 5, 6, 3],
    [0, 1, 2, 0],
    [4, 3, 3, 3],
  ], // a ZeroPadding2D's gradient: H and W cut, C whole
  [
    [4, 5, 6, 3],
    [1, 0, 0, 1],
    [2, 5, 6, 2],
  ], // the innermost axis cut
  [
    [4, 5, 6, 3],
    [2, 0, 0, 0],
    [2, 5, 6, 3],
  ], // one contiguous run
  [
    [4, 5, 6, 3],
    [0, 0, 0, 0],
    [4, 5, 6, 3],
  ], // everything
  [
    [7, 9],
    [3, 2],
    [4, 5],
  ],
  [[11], [4], [5]],
] as const)('Slice of %j from %j, size %j matches cpu, float32 and int32', async (shape, begin, size) => {
  const v = randomValues(sizeOf(shape), 9);
  await compare(() => {
    const x = tf.tensor(v, [...shape]);
    return [
      tf.slice(x, [...begin], [...size]),
      tf.cast(tf.slice(tf.cast(tf.mul(x, 100), 'int32'), [...begin], [...size]), 'float32'),
    ];
  });
});

test('Slice of bool and string tensors, and an empty slice', () => {
  const mask = tf.tensor2d([true, false, true, true, false, false], [2, 3], 'bool');
  expect(tf.slice(mask, [0, 1], [2, 2]).arraySync()).toEqual([
    [0, 1],
    [0, 0],
  ]);
  expect(tf.slice(tf.tensor1d(['a', 'b', 'c'], 'string'), [1], [2]).arraySync()).toEqual(['b', 'c']);
  expect(tf.slice(tf.ones([3, 4]), [1, 0], [0, 4]).shape).toEqual([0, 4]);
});

test('Identity shares the memory of its input, and the copy outlives the original', () => {
  const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);
  const backend = tf.backend() as unknown as { refCount(dataId: object): number };
  const before = backend.refCount(x.dataId);
  const y = tf.clone(x);
  expect(backend.refCount(x.dataId)).toBe(before + 1);
  x.dispose();
  expect(y.arraySync()).toEqual([
    [1, 2],
    [3, 4],
  ]);
  y.dispose();
  expect(tf.clone(tf.tensor1d(['s'], 'string')).arraySync()).toEqual(['s']);
});

test('Cast to the same dtype shares the memory; to another dtype it converts', () => {
  const x = tf.tensor1d([1.7, -2.2, 0]);
  const backend = tf.backend() as unknown as { refCount(dataId: object): number };
  const before = backend.refCount(x.dataId);
  const y = tf.cast(x, 'float32');
  expect(backend.refCount(x.dataId)).toBe(before + 1);
  expect(Array.from(y.dataSync())).toEqual(Array.from(x.dataSync()));
  expect(Array.from(tf.cast(x, 'int32').dataSync())).toEqual([1, -2, 0]);
  tf.dispose([x, y]);
});

test("ClipByValue's gradient is one ClipByValueGrad on wasm and matches cpu's ops, bounds included", async () => {
  const v = randomValues(2 * 9 * 9 * 5, 31).map((x) => x * 8);
  await compare(() =>
    tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.clipByValue(x, -2, 6), tf.range(0, 810).reshape([2, 9, 9, 5]))))(
      tf.tensor4d(v, [2, 9, 9, 5]),
    ),
  );
  // At the bounds, beyond them, a NaN input and infinite upstream gradients: as Select gives them.
  const x = [-1, 0, 0.5, 6, 6.5, NaN, 3, 7];
  const dy = [1, 2, 3, 4, 5, 6, Infinity, -Infinity];
  const grad = () => tf.grad((t: tf.Tensor) => tf.clipByValue(t, 0, 6))(tf.tensor1d(x), tf.tensor1d(dy));
  const [wasm, cpu] = [await onBackend('wasm', grad), await onBackend('cpu', grad)];
  expect(wasm[0]).toEqual([0, 2, 3, 4, 0, 0, Infinity, 0]);
  expect(wasm).toEqual(cpu);
  const profile = await tf.profile(() => grad().dispose());
  const names = profile.kernels.map((k) => k.name);
  expect(names).toContain('ClipByValueGrad');
  expect(names).not.toContain('Select');
});

test('training through the wasm kernels changes the filter in the direction cpu does', async () => {
  // End to end: one SGD step on a conv + pool + dense net, same weights, on both backends.
  const xv = randomValues(4 * 12 * 12, 21);
  const kv = randomValues(3 * 3 * 4, 22);
  const dv = randomValues(6 * 6 * 4 * 3, 23);
  await compare(() => {
    const x = tf.tensor4d(xv, [4, 12, 12, 1]);
    const k = tf.tensor4d(kv, [3, 3, 1, 4]);
    const d = tf.tensor2d(dv, [6 * 6 * 4, 3]);
    const loss = (kk: tf.Tensor, dd: tf.Tensor) => {
      const h = tf.maxPool(tf.relu(tf.conv2d(x, kk as tf.Tensor4D, 1, 'same')), 2, 2, 'valid');
      return tf.mean(tf.square(tf.matMul(tf.reshape(h, [4, -1]), dd as tf.Tensor2D)));
    };
    return tf.grads(loss)([k, d]);
  });
});
