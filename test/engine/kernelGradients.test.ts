/**
 * The gradients advsieve registers in place of tfjs-core's (src/engine/kernels/gradients/): the
 * same values as the gradients of the same function written with elementary ops, on wasm and cpu,
 * and, for an input gradient, none of the work the other inputs' gradients need.
 */
import * as tf from '@tensorflow/tfjs';
import { maxAbsDiff, onBackend, randomValues, setUpBackends } from '../helpers/backends';

beforeAll(async () => {
  await setUpBackends();
});

const X = [3, 5, 4, 6] as const;
const C = X[3];
const EPS = 1e-3;

/** [x, mean, variance, scale, offset], variance positive. */
function bnInputs(): tf.Tensor[] {
  const positive = randomValues(C, 4).map((v) => 0.2 + Math.abs(v));
  return [
    tf.tensor4d(randomValues(3 * 5 * 4 * C, 1), [...X]),
    tf.tensor1d(randomValues(C, 2)),
    tf.tensor1d(positive),
    tf.tensor1d(randomValues(C, 5)),
    tf.tensor1d(randomValues(C, 6)),
  ];
}

const weights = () => tf.tensor4d(randomValues(3 * 5 * 4 * C, 9), [...X]);

test.each(['wasm', 'cpu'])(
  "FusedBatchNorm's gradients, every input's, equal the elementary ops' on %s",
  async (backend) => {
    const [fused, elementary] = [
      (x: tf.Tensor, m: tf.Tensor, v: tf.Tensor, s: tf.Tensor, o: tf.Tensor) =>
        tf.batchNorm(x as tf.Tensor4D, m, v, o, s, EPS),
      (x: tf.Tensor, m: tf.Tensor, v: tf.Tensor, s: tf.Tensor, o: tf.Tensor) =>
        tf.add(tf.mul(tf.mul(tf.sub(x, m), tf.rsqrt(tf.add(v, EPS))), s), o),
    ].map((f) =>
      onBackend(backend, () =>
        tf.tidy(() => {
          const w = weights();
          return tf.grads((...args: tf.Tensor[]) => tf.sum(tf.mul(f(args[0], args[1], args[2], args[3], args[4]), w)))(
            bnInputs(),
          );
        }),
      ),
    );
    const [ours, reference] = [await fused, await elementary];
    ours.forEach((g, i) => {
      const scale = Math.max(1, ...reference[i].map(Math.abs));
      expect(maxAbsDiff(g, reference[i]) / scale).toBeLessThan(1e-5);
    });
  },
);

test("FusedBatchNorm's input gradient is one broadcasting multiply over the activation: no x − mean, no tile", async () => {
  const [x, mean, variance, scale, offset] = bnInputs();
  const profile = await tf.profile(() => {
    const g = tf.grad((t: tf.Tensor) =>
      tf.sum(tf.mul(tf.batchNorm(t as tf.Tensor4D, mean, variance, offset, scale, EPS), 2)),
    )(x);
    g.dispose();
  });
  const full = profile.kernels.filter((k) => k.outputShapes.some((s) => s?.length === 4));
  const names = full.map((k) => k.name);
  expect(names).not.toContain('Sub');
  expect(names).not.toContain('Tile');
  // The forward ·2, then backward: Sum's (dy · ones), Multiply's (dy · 2), batch norm's (dy · factor).
  expect(names.filter((n) => n === 'Multiply')).toHaveLength(4);
  tf.dispose([x, mean, variance, scale, offset]);
});
