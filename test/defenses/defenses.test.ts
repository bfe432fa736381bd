/** The input-transformation defenses on hand-made images, on the wasm backend. */
import * as tf from '@tensorflow/tfjs';
import { BitDepthDefense } from '../../src/defenses/bitDepth';
import { Defense } from '../../src/defenses/defense';
import { JpegDefense } from '../../src/defenses/jpeg';
import { LowPassDefense } from '../../src/defenses/lowPass';
import { MedianDefense } from '../../src/defenses/median';
import { DEFENSE_NAMES, makeDefense } from '../../src/defenses/registry';
import { initBackend } from '../../src/engine/backends';
import { highFrequencyShare, lowPass } from '../../src/engine/spectra';
import { mulberry32 } from '../../src/train/random';

beforeAll(async () => {
  await initBackend('wasm');
});

/** An image batch [n, h, w, c] with value(b, y, x, k). */
function images(
  [n, h, w, c]: [number, number, number, number],
  value: (b: number, y: number, x: number, k: number) => number,
): tf.Tensor4D {
  const v = new Float32Array(n * h * w * c);
  let i = 0;
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) v[i++] = value(b, y, x, k);
  return tf.tensor4d(v, [n, h, w, c]);
}

function noise(shape: [number, number, number, number], seed: number, lo = 0, hi = 1): tf.Tensor4D {
  const random = mulberry32(seed);
  return images(shape, () => lo + (hi - lo) * random());
}

const checker = (y: number, x: number) => (y + x) % 2;

async function values(t: tf.Tensor): Promise<number[]> {
  const v = Array.from(await t.data());
  t.dispose();
  return v;
}

async function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  return (await values(tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))))))[0];
}

async function meanAbsDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  return (await values(tf.tidy(() => tf.mean(tf.abs(tf.sub(a, b))))))[0];
}

/** spectra.lowPass on each channel of x separately, unclipped: the reference for the defense. */
function perChannelLowPass(x: tf.Tensor4D, radius: number, kind: 'ideal' | 'gaussian'): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const planes = tf.unstack(x, 3).map((p) => tf.expandDims(lowPass(p as tf.Tensor3D, radius, kind), 3));
    return tf.reshape(tf.concat(planes, 3), [n, h, w, c]) as tf.Tensor4D;
  });
}

describe('low-pass', () => {
  test.each(['ideal', 'gaussian'] as const)('%s leaves a constant image unchanged', async (kind) => {
    const x = images([2, 12, 10, 3], () => 0.3);
    const y = await new LowPassDefense({ radius: 0.2, kind }).apply(x);
    expect(await maxAbsDiff(y, x)).toBeLessThan(1e-5);
    tf.dispose([x, y]);
  });

  test('flattens a 1-pixel checkerboard and drops the high-frequency share of a smooth image with one', async () => {
    const defense = new LowPassDefense({ radius: 0.25, kind: 'gaussian' });
    const board = images([1, 16, 16, 1], (_, y, x) => checker(y, x));
    const flat = await defense.apply(board);
    expect(await maxAbsDiff(flat, tf.fill(flat.shape, 0.5))).toBeLessThan(0.02);

    const mixed = images(
      [1, 16, 16, 1],
      (_, y, x) => 0.5 + 0.25 * Math.cos((2 * Math.PI * y) / 16) + 0.2 * (checker(y, x) - 0.5),
    );
    const filtered = await defense.apply(mixed);
    const share = (t: tf.Tensor4D) => values(highFrequencyShare(tf.reshape(t, [1, 16, 16]) as tf.Tensor3D, 0.25));
    const [before] = await share(mixed);
    const [after] = await share(filtered);
    expect(before).toBeGreaterThan(0.2);
    expect(after).toBeLessThan(0.01);
    // The smooth part survives: the gaussian weighs its frequency (1/16 cycle per pixel) by 0.97.
    expect(
      await maxAbsDiff(
        filtered,
        images([1, 16, 16, 1], (_, y) => 0.5 + 0.25 * Math.cos((2 * Math.PI * y) / 16)),
      ),
    ).toBeLessThan(0.02);
    tf.dispose([board, flat, mixed, filtered]);
  });

  test.each([1, 3])('keeps the shape for C = %i, filters each channel on its own, and stays in [0, 1]', async (c) => {
    const x = noise([2, 12, 10, c], 7);
    const y = await new LowPassDefense({ radius: 0.15, kind: 'ideal' }).apply(x);
    expect(y.shape).toEqual([2, 12, 10, c]);
    const v = await y.data();
    expect(Math.min(...v)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...v)).toBeLessThanOrEqual(1);
    const expected = tf.tidy(() => tf.clipByValue(perChannelLowPass(x, 0.15, 'ideal'), 0, 1));
    expect(await maxAbsDiff(y, expected)).toBeLessThan(1e-5);
    expected.dispose();
    tf.dispose([x, y]);
  });

  test('applyDifferentiable matches apply, and its gradient is the filter applied to the upstream gradient', async () => {
    const defense = new LowPassDefense({ radius: 0.2, kind: 'gaussian' });
    // Values in [0.3, 0.7] stay inside [0, 1] after the (positive-kernel) gaussian, so the clip is inactive.
    const x = noise([2, 8, 12, 3], 11, 0.3, 0.7);
    const weights = noise([2, 8, 12, 3], 12, -1, 1);
    const viaApply = await defense.apply(x);
    const direct = defense.applyDifferentiable(x);
    expect(await maxAbsDiff(direct, viaApply)).toBe(0);
    const grad = tf.grad((t) => tf.sum(tf.mul(defense.applyDifferentiable(t as tf.Tensor4D), weights)))(x);
    expect(grad.shape).toEqual(x.shape);
    // A real, even mask makes the filter symmetric: its adjoint is itself.
    const expected = perChannelLowPass(weights, 0.2, 'gaussian');
    expect(await maxAbsDiff(grad, expected)).toBeLessThan(1e-4);
    expect((await values(tf.max(tf.abs(grad))))[0]).toBeGreaterThan(0.01);
    tf.dispose([x, weights, viaApply, direct, grad, expected]);
  });
});

describe('bit depth', () => {
  const row = (v: number[]) => tf.tensor4d(v, [1, 1, v.length, 1]);

  test('1 bit (the grey default) rounds to 0 or 1', async () => {
    const x = row([0, 0.2, 0.49, 0.51, 0.8, 1]);
    expect(await values(await new BitDepthDefense().apply(x))).toEqual([0, 0, 0, 1, 1, 1]);
    x.dispose();
  });

  test('2 bits keep the levels 0, 1/3, 2/3, 1; values outside [0, 1] are clipped first', async () => {
    const x = row([0, 0.2, 0.45, 0.6, 0.9, 1, -0.3, 1.4]);
    const got = await values(await new BitDepthDefense({ bits: 2 }).apply(x));
    const expected = [0, 1, 1, 2, 3, 3, 0, 3].map((l) => l / 3);
    got.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 6));
    x.dispose();
  });

  test('colour images default to 5 bits', async () => {
    const x = tf.tensor4d([0.1, 0.5 + 0.1 / 31, 0.9], [1, 1, 1, 3]);
    const got = await values(await new BitDepthDefense().apply(x));
    [3, 16, 28].forEach((l, i) => expect(got[i]).toBeCloseTo(l / 31, 6));
    x.dispose();
  });
});

describe('median 2×2', () => {
  test('a hand-checked 3×3 example: window (i..i+1, j..j+1), edges repeated, mean of the middle two', async () => {
    const x = tf.tensor4d([0.1, 0.9, 0.2, 0.4, 0.3, 0.8, 0.5, 0.7, 0.6], [1, 3, 3, 1]);
    const got = await values(await new MedianDefense().apply(x));
    const expected = [0.35, 0.55, 0.5, 0.45, 0.65, 0.7, 0.6, 0.65, 0.6];
    got.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 6));
    x.dispose();
  });

  test('removes an isolated spike and treats channels independently', async () => {
    const x = images([1, 5, 6, 3], (_, y, xx, k) => (k === 0 && y === 2 && xx === 3 ? 1 : k === 1 ? 0.25 : 0));
    const got = await values(await new MedianDefense().apply(x));
    got.forEach((v, i) => expect(v).toBeCloseTo(i % 3 === 1 ? 0.25 : 0, 6));
    x.dispose();
  });

  test('applyDifferentiable has a gradient', async () => {
    const x = noise([1, 6, 6, 1], 3);
    const grad = tf.grad((t) => tf.sum(new MedianDefense().applyDifferentiable(t as tf.Tensor4D)))(x);
    // Each output is the mean of two of its inputs: the gradient sums to the output count.
    expect((await values(tf.sum(grad)))[0]).toBeCloseTo(36, 4);
    tf.dispose([x, grad]);
  });
});

describe('JPEG', () => {
  test.each([1, 3])('a smooth image (C = %i) comes back close', async (c) => {
    const x = images([2, 32, 24, c], (b, y, xx, k) => 0.2 + 0.6 * ((y + xx) / 54) + 0.05 * k + 0.05 * b);
    const y = await new JpegDefense().apply(x);
    expect(y.shape).toEqual(x.shape);
    expect(await meanAbsDiff(y, x)).toBeLessThan(0.03);
    tf.dispose([x, y]);
  });

  test('random noise is changed, more so at a lower quality', async () => {
    const x = noise([1, 32, 32, 3], 5);
    const q75 = await new JpegDefense().apply(x);
    const q20 = await new JpegDefense({ quality: 20 }).apply(x);
    const e75 = await meanAbsDiff(q75, x);
    expect(e75).toBeGreaterThan(0.05);
    expect(await meanAbsDiff(q20, x)).toBeGreaterThan(e75);
    const v = await q75.data();
    expect(Math.min(...v)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...v)).toBeLessThanOrEqual(1);
    tf.dispose([x, q75, q20]);
  });

  test('has no differentiable version', () => {
    expect((new JpegDefense() as Defense).applyDifferentiable).toBeUndefined();
  });
});

describe('registry and options', () => {
  test('every name builds its defense', () => {
    expect(DEFENSE_NAMES.map((n) => makeDefense(n).name)).toEqual(['lowpass', 'bitdepth', 'median', 'jpeg']);
    expect(makeDefense('jpeg', { quality: 40 })).toMatchObject({ quality: 40 });
  });

  test('an unknown name or option is an error naming the valid ones', () => {
    expect(() => makeDefense('blur')).toThrow(
      /unknown defense 'blur'; expected one of lowpass, bitdepth, median, jpeg/,
    );
    expect(() => makeDefense('jpeg', { qualty: 50 })).toThrow(
      /jpeg defense: unknown option 'qualty'; expected one of quality/,
    );
    expect(() => makeDefense('median', { bits: 1 })).toThrow(
      /median defense: unknown option 'bits'; expected no options/,
    );
  });

  test.each([
    [() => new LowPassDefense({ radius: 0 }), /lowpass defense: option 'radius' must be a finite number > 0.*got 0/],
    [() => new LowPassDefense({ kind: 'box' as 'ideal' }), /option 'kind' must be one of ideal, gaussian; got 'box'/],
    [() => new BitDepthDefense({ bits: 9 }), /bitdepth defense: option 'bits' must be an integer from 1 to 8; got 9/],
    [() => new BitDepthDefense({ bits: 2.5 }), /'bits'.*got 2.5/],
    [() => new JpegDefense({ quality: 0 }), /jpeg defense: option 'quality' must be an integer from 1 to 100; got 0/],
  ])('bad options are RangeErrors naming the option (%#)', (make, message) => {
    expect(make).toThrow(RangeError);
    expect(make).toThrow(message);
  });

  test('images that are not [N, H, W, 1 or 3] are refused', async () => {
    const x = tf.zeros([1, 4, 4, 2]) as tf.Tensor4D;
    for (const name of DEFENSE_NAMES)
      await expect(makeDefense(name).apply(x)).rejects.toThrow(/C = 1 or 3; got \[1, 4, 4, 2\]/);
    x.dispose();
  });
});

test('no defense leaks tensors', async () => {
  const x = noise([2, 8, 8, 3], 9);
  const defenses: Defense[] = DEFENSE_NAMES.map((n) => makeDefense(n));
  // Warm-up: the DFT matrices are cached per size, once per process.
  for (const d of defenses) (await d.apply(x)).dispose();
  const before = tf.memory().numTensors;
  for (const d of defenses) {
    (await d.apply(x)).dispose();
    if (d.applyDifferentiable) {
      const f = d.applyDifferentiable.bind(d);
      tf.dispose([f(x), tf.grad((t) => tf.sum(f(t as tf.Tensor4D)))(x)]);
    }
  }
  expect(tf.memory().numTensors).toBe(before);
  x.dispose();
});
