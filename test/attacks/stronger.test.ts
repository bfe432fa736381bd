/**
 * The attacks aimed at the detectors: feature matching (and its low-frequency variant), the
 * end-to-end adaptive attack with restarts and its unbounded sanity check, and a call's κ for CW.
 */
import * as tf from '@tensorflow/tfjs';
import { detectorAwareTarget } from '../../src/attacks/adaptive';
import type { AttackTarget } from '../../src/attacks/attack';
import { CarliniWagnerL2 } from '../../src/attacks/cw';
import { EndToEnd } from '../../src/attacks/endToEnd';
import { FeatureMatching } from '../../src/attacks/featureMatching';
import { getAttack, RESEARCH_ATTACKS } from '../../src/attacks/registry';
import { modelTarget } from '../../src/attacks/target';
import { calibrationPath, loadCalibration } from '../../src/calibration/calibrationFile';
import { initBackend } from '../../src/engine/backends';
import { InferenceModel } from '../../src/engine/model';
import { highFrequencyShareImages } from '../../src/engine/spectra';
import { runInBatches } from '../../src/screening/inProcess';
import { Screener } from '../../src/screening/screener';
import { BUNDLED_MODEL_DIR, fixtureLabels, fixturePixels } from '../helpers/fixtures';

let model: InferenceModel;
let target: AttackTarget;
let screener: Screener;
let x: tf.Tensor4D;
let labels: Int32Array;
/** Per fixture, another fixture of a different class: its guide. */
let guides: Float32Array;

const predictions = async (images: tf.Tensor4D) => {
  const classes = tf.tidy(() => tf.argMax(model.logits(images), 1));
  const out = Int32Array.from(await classes.data());
  classes.dispose();
  return out;
};
const correct = async (images: tf.Tensor4D) => (await predictions(images)).filter((p, i) => p === labels[i]).length;
const linf = async (a: tf.Tensor4D) => {
  const d = tf.tidy(() => tf.max(tf.abs(tf.sub(a, x))));
  const v = (await d.data())[0];
  d.dispose();
  return v;
};
/** Per image Σ_l ‖φ_l(a) − φ_l(g)‖² / ‖φ_l(g)‖²: what feature matching minimises. */
async function featureDistance(a: tf.Tensor4D): Promise<number> {
  const g = tf.tensor4d(guides, x.shape);
  const d = tf.tidy(() => {
    const fa = model.forwardDifferentiable(a).activations;
    const fg = model.forwardDifferentiable(g).activations;
    return tf.mean(
      tf.addN(
        Object.keys(fg).map((l) => tf.div(tf.sum(tf.square(tf.sub(fa[l], fg[l])), 1), tf.sum(tf.square(fg[l]), 1))),
      ),
    );
  });
  const v = (await d.data())[0];
  tf.dispose([d, g]);
  return v;
}

beforeAll(async () => {
  await initBackend('wasm');
  model = await InferenceModel.load(BUNDLED_MODEL_DIR);
  target = modelTarget(model);
  screener = new Screener(
    loadCalibration(calibrationPath(BUNDLED_MODEL_DIR), model.stored.sha256),
    model.metadata.labels,
  );
  const fixtures = fixtureLabels();
  const pixels = new Float32Array(fixtures.length * 784);
  for (const [i, f] of fixtures.entries()) pixels.set(await fixturePixels(f.file), i * 784);
  x = tf.tensor4d(pixels, [fixtures.length, 28, 28, 1]);
  labels = Int32Array.from(fixtures, (f) => f.label);
  guides = new Float32Array(pixels.length);
  fixtures.forEach((f, i) => {
    const g = fixtures.findIndex((h, k) => k > i && h.label !== f.label);
    const j = g >= 0 ? g : fixtures.findIndex((h) => h.label !== f.label);
    guides.set(pixels.subarray(j * 784, (j + 1) * 784), i * 784);
  });
});
afterAll(() => {
  x.dispose();
  model.dispose();
});

test('the research attacks are found by name but stay out of the public list', () => {
  expect(getAttack('feature-matching')).toBe(RESEARCH_ATTACKS['feature-matching']);
  expect(getAttack('pgd-e2e')).toBe(RESEARCH_ATTACKS['pgd-e2e']);
  expect(() => getAttack('deepfool')).toThrow(/fgsm, pgd, cw, square$/);
});

test('feature matching pulls every layer towards the guide within ε, lowers accuracy, and is deterministic', async () => {
  const attack = new FeatureMatching();
  const trace: number[] = [];
  const options = { epsilon: 0.1, steps: 40, guides, trace: (s: number, loss: number) => (trace[s] = loss) };
  const tensors = tf.memory().numTensors;
  const adv = await attack.run(target, x, labels, options);
  expect(tf.memory().numTensors).toBe(tensors + 1);
  expect(await linf(adv)).toBeLessThanOrEqual(0.1 + 1e-6);
  const before = await featureDistance(x);
  const after = await featureDistance(adv);
  expect(after).toBeLessThan(0.7 * before);
  expect(trace).toHaveLength(40);
  expect(trace[39]).toBeLessThan(trace[0]);
  expect(await correct(adv)).toBeLessThan(await correct(x));
  const again = await attack.run(target, x, labels, { epsilon: 0.1, steps: 40, guides });
  expect(Array.from(await again.data())).toEqual(Array.from(await adv.data()));
  await expect(attack.run(target, x, labels, { epsilon: 0.1 })).rejects.toThrow(/guides/);
  await expect(attack.run({ logits: target.logits }, x, labels, { epsilon: 0.1, guides })).rejects.toThrow(/features/);
  tf.dispose([adv, again]);
});

test('the low-frequency variant keeps less of its perturbation above the cut-off than the plain one', async () => {
  const plain = await new FeatureMatching().run(target, x, labels, { epsilon: 0.1, steps: 20, guides });
  const low = await new FeatureMatching({ lowFrequencyRadius: 0.2 }).run(target, x, labels, {
    epsilon: 0.1,
    steps: 20,
    guides,
  });
  expect(await linf(low)).toBeLessThanOrEqual(0.1 + 1e-6);
  const share = async (a: tf.Tensor4D) => {
    const s = tf.tidy(() => tf.mean(highFrequencyShareImages(tf.sub(a, x) as tf.Tensor4D, [0.3])));
    const v = (await s.data())[0];
    s.dispose();
    return v;
  };
  expect(await share(low)).toBeLessThan(0.5 * (await share(plain)));
  expect(() => new FeatureMatching({ lowFrequencyRadius: 2 })).toThrow(/lowFrequencyRadius/);
  tf.dispose([plain, low]);
});

test('the end-to-end attack: within ε, at least as strong as its first run, seeded, traced per step', async () => {
  const attack = new EndToEnd({ restarts: 2 });
  const steps: number[] = [];
  const tensors = tf.memory().numTensors;
  const adv = await attack.run(target, x, labels, { epsilon: 0.1, steps: 20, seed: 4, trace: (s) => steps.push(s) });
  expect(tf.memory().numTensors).toBe(tensors + 1); // the result only: nothing leaked
  expect(await linf(adv)).toBeLessThanOrEqual(0.1 + 1e-6);
  expect(steps).toEqual(Array.from({ length: 40 }, (_, k) => k));
  const one = await new EndToEnd({ restarts: 1 }).run(target, x, labels, { epsilon: 0.1, steps: 20, seed: 4 });
  // The best iterate over both runs: never fewer misclassified than the first run alone.
  expect(await correct(adv)).toBeLessThanOrEqual(await correct(one));
  expect(await correct(adv)).toBeLessThan(await correct(x));
  const again = await attack.run(target, x, labels, { epsilon: 0.1, steps: 20, seed: 4 });
  expect(Array.from(await again.data())).toEqual(Array.from(await adv.data()));
  expect(() => new EndToEnd({ restarts: 0 })).toThrow(/restarts/);
  tf.dispose([adv, one, again]);
});

test.each(['every', 'verdict'] as const)(
  'unbounded, the end-to-end attack (aim: %s) gets every image misclassified and unflagged (sanity)',
  async (aim) => {
    const aware = detectorAwareTarget(model, screener, undefined, aim);
    const adv = await new EndToEnd({ restarts: 1 }).run(aware, x, labels, { epsilon: 1, steps: 60, seed: 1 });
    const outputs = await runInBatches(model, (await adv.data()) as Float32Array, labels.length, screener.extras);
    // The deployed verdict: the combined score at the calibration's threshold.
    const flagged = outputs.filter((o) => screener.screen(o).detection.adversarial).length;
    expect({ correct: await correct(adv), flagged }).toEqual({ correct: 0, flagged: 0 });
    adv.dispose();
  },
  300_000,
);

test("the verdict-only aim's penalty is the verdict's own excess (as screening computes it) and never above the every-detector aim's", async () => {
  // Fixtures and their PGD versions: clean images under the verdict's threshold, attacked ones over it.
  const pgd = await getAttack('pgd').run(target, x, labels, { epsilon: 0.1, steps: 10, seed: 2 });
  const both = tf.concat([x, pgd]) as tf.Tensor4D;
  const read = async (t: AttackTarget) => {
    const p = tf.tidy(() => t.penalty!(both));
    const v = Array.from(await p.data());
    p.dispose();
    return v;
  };
  const verdict = await read(detectorAwareTarget(model, screener, undefined, 'verdict'));
  const every = await read(detectorAwareTarget(model, screener));
  const outputs = await runInBatches(model, (await both.data()) as Float32Array, 2 * labels.length, screener.extras);
  const excess = outputs.map((o) => {
    const d = screener.screen(o).detection;
    return Math.max(0, d.score - d.threshold);
  });
  verdict.forEach((v, i) => expect(v).toBeCloseTo(excess[i], 3));
  verdict.forEach((v, i) => expect(v).toBeLessThanOrEqual(every[i] + 1e-6));
  // Somewhere the verdict is quiet while a detector is not: the every-detector aim asks for more.
  expect(excess.filter((e) => e > 0).length).toBeGreaterThan(0);
  expect(every.some((e, i) => e > verdict[i] + 1e-3)).toBe(true);
  tf.dispose([pgd, both]);
});

test("a call's κ makes CW's successes pass the boundary by it", async () => {
  const adv = await new CarliniWagnerL2().run(target, x, labels, { epsilon: Infinity, steps: 30, confidence: 5 });
  const margins = tf.tidy(() => {
    const z = model.logits(adv);
    const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), z.shape[1]);
    const own = tf.sum(tf.mul(z, onehot), 1);
    const other = tf.max(tf.sub(z, tf.mul(onehot, 1e9)), 1);
    return tf.sub(other, own);
  });
  const m = Array.from(await margins.data()).filter((v) => v > 0);
  margins.dispose();
  expect(m.length).toBeGreaterThan(labels.length / 2);
  for (const v of m) expect(v).toBeGreaterThanOrEqual(5 - 0.05);
  adv.dispose();
});
