/**
 * The causes-study layers on their own: the L2-normalised dense layer's invariants, the PNN head's
 * densities on hand-set prototypes, input gradients through both on wasm, and a save/load round
 * trip through modelStore (the classes registered as every loader does).
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend } from '../../../src/engine/backends';
import { L2NormalizedDense, l2NormalizeRows, L2NormMode } from '../../../src/engine/layers/l2NormalizedDense';
import {
  logTotalDensity,
  noneProbability,
  noneProbabilityOf,
  PnnHead,
  UNSET_LOG_BACKGROUND,
} from '../../../src/engine/layers/pnnHead';
import { loadModel, saveModel } from '../../../src/engine/modelStore';

beforeAll(async () => {
  await initBackend('wasm');
});

const D = 6;
const K = 3;

function withHead(head: tf.layers.Layer): tf.Sequential {
  const m = tf.sequential();
  m.add(
    tf.layers.dense({
      inputShape: [4],
      units: D,
      activation: 'relu',
      kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      biasInitializer: tf.initializers.constant({ value: 0.1 }),
    }),
  );
  m.add(head);
  return m;
}

const features = () => tf.randomNormal([16, D], 0, 3, 'float32', 4) as tf.Tensor2D;

describe('L2NormalizedDense', () => {
  test('normalised rows have norm 1 (and an all-zero row stays zero, not NaN)', () => {
    const x = tf.concat([features(), tf.zeros([1, D])]);
    const norms = tf.norm(l2NormalizeRows(x), 'euclidean', 1).arraySync() as number[];
    norms.slice(0, -1).forEach((n) => expect(n).toBeCloseTo(1, 5));
    expect(norms[norms.length - 1]).toBe(0);
  });

  test.each<[L2NormMode]>([['features'], ['weights'], ['both']])(
    "'%s': logits are what the formula says, and invariant where it promises",
    (mode) => {
      const s = 7;
      const layer = new L2NormalizedDense({ units: K, normalize: mode, scale: s, seed: 2 });
      const f = features();
      const z = layer.apply(f) as tf.Tensor2D;
      const [w, b] = layer.getWeights();
      const fn = tf.div(f, tf.norm(f, 'euclidean', 1, true));
      const wn = tf.div(w, tf.norm(w, 'euclidean', 0, true));
      const expected =
        mode === 'features'
          ? tf.add(tf.mul(tf.matMul(fn, w), s), b)
          : mode === 'weights'
            ? tf.mul(tf.matMul(f, wn), s)
            : tf.mul(tf.matMul(fn, wn), s);
      expect(tf.max(tf.abs(tf.sub(z, expected))).dataSync()[0]).toBeLessThan(1e-4);
      // Features normalised: scaling an input's features changes nothing.
      const z5 = layer.apply(tf.mul(f, 5)) as tf.Tensor;
      const scaleGap = tf.max(tf.abs(tf.sub(z5, z))).dataSync()[0];
      if (mode === 'weights') {
        expect(b).toBeUndefined();
        expect(scaleGap).toBeGreaterThan(1e-2); // linear in the features
      } else expect(scaleGap).toBeLessThan(1e-4);
      if (mode === 'both') {
        expect(tf.max(tf.abs(z)).dataSync()[0]).toBeLessThanOrEqual(s + 1e-4);
        // Even huge features cannot take a cosine logit past s.
        expect(tf.max(tf.abs(layer.apply(tf.mul(f, 1e6)) as tf.Tensor)).dataSync()[0]).toBeLessThanOrEqual(s + 1e-3);
      }
    },
  );

  test('refuses a bad mode or scale, naming it', () => {
    expect(() => new L2NormalizedDense({ units: 2, normalize: 'rows' as L2NormMode, scale: 1 })).toThrow(/normalize/);
    expect(() => new L2NormalizedDense({ units: 2, normalize: 'both', scale: 0 })).toThrow(/scale/);
  });
});

describe('PnnHead', () => {
  /** A built head with prototypes `p` ([K·M, D]) and width σ. */
  function handSet(p: number[][], m: number, sigma: number, dim = D): PnnHead {
    const head = new PnnHead({ units: p.length / m, prototypesPerClass: m });
    head.apply(tf.zeros([1, dim]));
    head.setWeights([tf.tensor2d(p), tf.tensor1d([Math.log(sigma)]), tf.tensor1d([UNSET_LOG_BACKGROUND])]);
    return head;
  }
  const logNorm = (dim: number, sigma: number) => dim * Math.log(sigma) + (dim / 2) * Math.log(2 * Math.PI);

  test('a point at a prototype has the Gaussian peak log-density; a point at distance r loses r²/2σ²', () => {
    const sigma = 0.5;
    const head = handSet(
      [
        [0, 0, 0],
        [3, 0, 0],
        [0, 4, 0],
      ],
      1,
      sigma,
      3,
    );
    const z = (
      head.apply(
        tf.tensor2d([
          [3, 0, 0],
          [3, 1, 0],
        ]),
      ) as tf.Tensor
    ).arraySync() as number[][];
    expect(z[0][1]).toBeCloseTo(-logNorm(3, sigma), 4);
    expect(z[1][1]).toBeCloseTo(-1 / (2 * sigma * sigma) - logNorm(3, sigma), 4);
    // Class 0's prototype is 3 away from [3, 0, 0].
    expect(z[0][0]).toBeCloseTo(-9 / (2 * sigma * sigma) - logNorm(3, sigma), 3);
    expect(head.sigma()).toBeCloseTo(sigma, 6);
  });

  test('several prototypes per class: a mixture with equal weights', () => {
    const head = handSet(
      [
        [0, 0],
        [2, 0],
        [0, 5],
        [0, 6],
      ],
      2,
      1,
      2,
    );
    const z = (head.apply(tf.tensor2d([[1, 0]])) as tf.Tensor).arraySync() as number[][];
    // Both of class 0's kernels at distance 1: log(½(e^-½ + e^-½)) = −½.
    expect(z[0][0]).toBeCloseTo(-0.5 - logNorm(2, 1), 4);
  });

  test('p(none): low at a prototype, ½ where the density falls to b, ~1 far from every prototype; the tensor and array forms agree', () => {
    const head = handSet(
      [
        [0, 0, 0],
        [3, 0, 0],
        [0, 4, 0],
      ],
      1,
      0.5,
      3,
    );
    // b at the density of a point 2σ from a lone prototype (of K = 3 equally weighted classes).
    const logB = -2 - logNorm(3, 0.5) - Math.log(3);
    head.setLogBackground(logB);
    expect(head.getLogBackground()).toBeCloseTo(logB, 4);
    const logits = head.apply(
      tf.tensor2d([
        [0, 0, 0],
        [1, 0, 0],
        [40, 40, 40],
      ]),
    ) as tf.Tensor2D;
    const none = noneProbability(logits, logB).arraySync() as number[];
    // At class 0's prototype the total density is e² times b: p(none) = 1 / (1 + e²).
    expect(none[0]).toBeCloseTo(1 / (1 + Math.exp(2)), 4);
    expect(none[1]).toBeCloseTo(0.5, 2); // 2σ = 1 from class 0 (class 1, 2 away, adds e⁻⁸ of it)
    expect(none[2]).toBeGreaterThan(0.999);
    const rows = logits.arraySync() as number[][];
    rows.forEach((r, i) => expect(noneProbabilityOf(r, logB)).toBeCloseTo(none[i], 4));
    expect(logTotalDensity(logits).shape).toEqual([3]);
  });

  test('the background is not trainable; prototypes and σ are', () => {
    const head = new PnnHead({ units: 2, prototypesPerClass: 3, seed: 1 });
    head.apply(tf.zeros([1, D]));
    const names = (ws: tf.LayerVariable[]) => ws.map((w) => w.originalName.split('/').pop());
    expect(names(head.trainableWeights)).toEqual(['prototypes', 'log_sigma']);
    expect(names(head.nonTrainableWeights)).toEqual(['log_background']);
  });
});

test.each([
  ['L2 both', () => new L2NormalizedDense({ units: K, normalize: 'both', scale: 10, seed: 3 })],
  ['L2 features', () => new L2NormalizedDense({ units: K, normalize: 'features', scale: 10, seed: 3 })],
  ['L2 weights', () => new L2NormalizedDense({ units: K, normalize: 'weights', scale: 10, seed: 3 })],
  ['PNN', () => new PnnHead({ units: K, prototypesPerClass: 2, seed: 3 })],
  [
    'PNN on normalised features',
    () => new PnnHead({ units: K, prototypesPerClass: 2, normalizeFeatures: true, seed: 3 }),
  ],
])(
  '%s: input gradients on wasm are finite and nonzero; save and load through modelStore keep the outputs',
  async (_, make) => {
    expect(tf.getBackend()).toBe('wasm');
    const m = withHead(make());
    const x = tf.randomUniform([5, 4], 0, 1, 'float32', 9);
    const target = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1], 'int32'), K);
    const g = tf.grad((xi: tf.Tensor) => tf.losses.softmaxCrossEntropy(target, m.apply(xi) as tf.Tensor))(x);
    const values = g.dataSync();
    expect(values.every(Number.isFinite)).toBe(true);
    expect(Math.max(...values.map(Math.abs))).toBeGreaterThan(1e-6);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-layers-'));
    try {
      const name = m.layers[1].name;
      await saveModel(m, dir, {
        id: 'layers',
        labels: ['a', 'b', 'c'],
        inputShape: [2, 2, 1],
        logitsLayer: name,
        activationLayers: [name],
      });
      const loaded = (await loadModel(dir)).model as tf.LayersModel;
      expect(loaded.layers[1].getClassName()).toBe(m.layers[1].getClassName());
      const gap = tf.max(tf.abs(tf.sub(loaded.predict(x) as tf.Tensor, m.predict(x) as tf.Tensor))).dataSync()[0];
      expect(gap).toBeLessThan(1e-5);
      loaded.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    m.dispose();
  },
);
