/** The attacks on the bundled model and the committed fixtures, and the `advsieve attack` command. */
import * as tf from '@tensorflow/tfjs';
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { promisify } from 'util';
import { Attack, AttackOptions, AttackTarget } from '../../src/attacks/attack';
import { CarliniWagnerL2 } from '../../src/attacks/cw';
import { FastGradientSignMethod } from '../../src/attacks/fgsm';
import { crossEntropy, ProjectedGradientDescent } from '../../src/attacks/pgd';
import { ATTACK_NAMES, ATTACKS, getAttack } from '../../src/attacks/registry';
import { SquareAttack, squareFraction } from '../../src/attacks/square';
import { modelTarget } from '../../src/attacks/target';
import { initBackend } from '../../src/engine/backends';
import { InferenceModel } from '../../src/engine/model';
import { decodeImage } from '../../src/images/decode';
import { BUNDLED_MODEL_DIR, fixtureLabels, fixturePixels } from '../helpers/fixtures';

let model: InferenceModel;
let target: AttackTarget;
let x: tf.Tensor4D;
let labels: Int32Array;
let cleanCorrect: number;

async function predictions(images: tf.Tensor4D): Promise<Int32Array> {
  const classes = tf.tidy(() => tf.argMax(model.logits(images), 1));
  const out = Int32Array.from(await classes.data());
  classes.dispose();
  return out;
}

async function correctCount(images: tf.Tensor4D, classes = labels): Promise<number> {
  return (await predictions(images)).filter((p, i) => p === classes[i]).length;
}

/** Per image: max |a − b| and ‖a − b‖₂; and the smallest and largest value of a. */
async function measure(a: tf.Tensor4D): Promise<{ linf: number; l2: number[]; min: number; max: number }> {
  const [av, xv] = (await Promise.all([a.data(), x.data()])) as Float32Array[];
  const l2 = new Array<number>(labels.length).fill(0);
  let linf = 0;
  av.forEach((v, i) => {
    const d = v - xv[i];
    linf = Math.max(linf, Math.abs(d));
    l2[Math.floor(i / 784)] += d * d;
  });
  return { linf, l2: l2.map(Math.sqrt), min: Math.min(...av), max: Math.max(...av) };
}

async function attackOnce(attack: Attack, options: AttackOptions, on: AttackTarget = target): Promise<tf.Tensor4D> {
  return attack.run(on, x, labels, options);
}

beforeAll(async () => {
  await initBackend('wasm');
  model = await InferenceModel.load(BUNDLED_MODEL_DIR);
  target = modelTarget(model);
  const fixtures = fixtureLabels();
  const pixels = new Float32Array(fixtures.length * 784);
  for (const [i, f] of fixtures.entries()) pixels.set(await fixturePixels(f.file), i * 784);
  x = tf.tensor4d(pixels, [fixtures.length, 28, 28, 1]);
  labels = Int32Array.from(fixtures, (f) => f.label);
  cleanCorrect = await correctCount(x);
});

afterAll(() => {
  x.dispose();
  model.dispose();
});

test('the registry holds one instance per attack under its own name; unknown names are refused with the valid ones', () => {
  expect(ATTACK_NAMES).toEqual(['fgsm', 'pgd', 'cw', 'square']);
  for (const name of ATTACK_NAMES) expect(getAttack(name).name).toBe(name);
  expect(getAttack('pgd')).toBe(ATTACKS.pgd);
  expect(() => getAttack('deepfool')).toThrow(
    new RangeError("unknown attack 'deepfool'; expected one of fgsm, pgd, cw, square"),
  );
});

test('the clean fixtures are mostly classified right (the baseline the attacks must beat)', () => {
  expect(cleanCorrect).toBeGreaterThanOrEqual(18);
});

// One table, as Foolbox tests attacks: each must lower accuracy within its budget.
const BUDGETED: Array<[string, Attack, AttackOptions]> = [
  ['fgsm', new FastGradientSignMethod(), { epsilon: 0.1 }],
  ['pgd', new ProjectedGradientDescent(), { epsilon: 0.1, steps: 10 }],
  ['cw', new CarliniWagnerL2({ searchSteps: 2 }), { epsilon: 1.5, steps: 10, stepSize: 0.05 }],
  ['square', new SquareAttack(), { epsilon: 0.1, steps: 200 }],
];

test.each(BUDGETED)(
  '%s lowers accuracy below clean accuracy, inside [0, 1] and inside its budget',
  async (name, attack, options) => {
    const adv = await attackOnce(attack, options);
    try {
      expect(adv.shape).toEqual(x.shape);
      const correct = await correctCount(adv);
      expect(correct).toBeLessThan(cleanCorrect);
      const m = await measure(adv);
      expect(m.min).toBeGreaterThanOrEqual(0);
      expect(m.max).toBeLessThanOrEqual(1);
      if (name === 'cw') for (const l2 of m.l2) expect(l2).toBeLessThanOrEqual(options.epsilon + 1e-4);
      else expect(m.linf).toBeLessThanOrEqual(options.epsilon + 1e-5);
      // Changed images, not a copy: every attack moves at least some pixels.
      expect(m.linf).toBeGreaterThan(0);
    } finally {
      adv.dispose();
    }
  },
);

// FGSM is left out: its single signed step lands on one corner of the box, and nothing makes that
// corner misclassified (at ε = 1 it still leaves a few fixtures right).
const UNBOUNDED: Array<[string, Attack, AttackOptions]> = [
  ['pgd', new ProjectedGradientDescent(), { epsilon: 1, steps: 10 }],
  ['cw', new CarliniWagnerL2({ searchSteps: 1 }), { epsilon: Infinity, steps: 30, stepSize: 0.05 }],
  ['square', new SquareAttack(), { epsilon: 1, steps: 100 }],
];

test.each(UNBOUNDED)('%s with an unbounded budget fools the model on every fixture', async (_name, attack, options) => {
  const adv = await attackOnce(attack, options);
  try {
    expect(await correctCount(adv)).toBe(0);
  } finally {
    adv.dispose();
  }
});

test('targeted PGD reaches the target class on most fixtures', async () => {
  const targets = labels.map((l) => (l + 1) % 10);
  const adv = await attackOnce(new ProjectedGradientDescent(), { epsilon: 0.15, steps: 20, targets });
  try {
    expect(await correctCount(adv, targets)).toBeGreaterThanOrEqual(16);
  } finally {
    adv.dispose();
  }
});

test('the penalty is minimised too: PGD with a penalty ends with a lower penalty than without', async () => {
  // A synthetic differentiable penalty: each image's mean brightness.
  const penalised: AttackTarget = { ...target, penalty: (images) => tf.mean(images, [1, 2, 3]) as tf.Tensor1D };
  const targets = labels.map((l) => (l + 1) % 10);
  const options = { epsilon: 0.1, steps: 10, targets, penaltyWeight: 100 };
  const plain = await attackOnce(new ProjectedGradientDescent(), options);
  const adaptive = await attackOnce(new ProjectedGradientDescent(), options, penalised);
  const brightness = (t: tf.Tensor4D) => tf.tidy(() => tf.mean(t)).data();
  try {
    expect((await brightness(adaptive))[0]).toBeLessThan((await brightness(plain))[0] - 0.01);
  } finally {
    tf.dispose([plain, adaptive]);
  }
});

test('runs are reproducible from the seed, and another seed gives another random start', async () => {
  const pgd = new ProjectedGradientDescent();
  const square = new SquareAttack();
  const runs = [
    await attackOnce(pgd, { epsilon: 0.1, steps: 2, seed: 7 }),
    await attackOnce(pgd, { epsilon: 0.1, steps: 2, seed: 7 }),
    await attackOnce(pgd, { epsilon: 0.1, steps: 2, seed: 8 }),
    await attackOnce(square, { epsilon: 0.05, steps: 30, seed: 7 }),
    await attackOnce(square, { epsilon: 0.05, steps: 30, seed: 7 }),
  ];
  try {
    const [a, b, c, d, e] = await Promise.all(runs.map((t) => t.data()));
    expect(Array.from(b)).toEqual(Array.from(a));
    expect(Array.from(c)).not.toEqual(Array.from(a));
    expect(Array.from(e)).toEqual(Array.from(d));
  } finally {
    tf.dispose(runs);
  }
});

test.each(BUDGETED)('%s gives the same images whatever the batch size', async (_name, attack, options) => {
  const small = { ...options, steps: Math.min(options.steps ?? 3, 3), seed: 3 };
  const runs = [await attackOnce(attack, { ...small, batchSize: 7 }), await attackOnce(attack, small)];
  try {
    const [a, b] = await Promise.all(runs.map((t) => t.data()));
    expect(Array.from(a)).toEqual(Array.from(b));
  } finally {
    tf.dispose(runs);
  }
});

test.each(BUDGETED)('%s leaks no tensors: only the returned one is left', async (_name, attack, options) => {
  const small = { ...options, steps: Math.min(options.steps ?? 2, 2), batchSize: 8 }; // 8: several batches
  (await attackOnce(attack, small)).dispose(); // warm-up: kernels and weights allocate once
  const before = tf.memory().numTensors;
  const adv = await attackOnce(attack, small);
  expect(tf.memory().numTensors).toBe(before + 1);
  adv.dispose();
});

test('bad calls are refused with what was expected and what came', async () => {
  const pgd = new ProjectedGradientDescent();
  await expect(pgd.run(target, x, labels, { epsilon: -1 })).rejects.toThrow(
    'epsilon: expected a finite number ≥ 0, got -1',
  );
  await expect(pgd.run(target, x, labels, { epsilon: Infinity })).rejects.toThrow('got Infinity');
  await expect(pgd.run(target, x, labels.subarray(0, 3), { epsilon: 0.1 })).rejects.toThrow(
    'labels: expected 20 values (one per image), got 3',
  );
  await expect(pgd.run(target, x, labels, { epsilon: 0.1, targets: labels.map(() => 10) })).rejects.toThrow(
    'targets[0]: expected a class index in [0, 10), got 10',
  );
  await expect(pgd.run(target, x, labels, { epsilon: 0.1, steps: 0 })).rejects.toThrow(
    'steps: expected an integer ≥ 1, got 0',
  );
  expect(() => new CarliniWagnerL2({ searchSteps: 0 })).toThrow('searchSteps: expected an integer ≥ 1, got 0');
  expect(() => new SquareAttack({ pInit: 2 })).toThrow('pInit: expected a fraction in (0, 1], got 2');
});

test("PGD's cross-entropy equals tfjs's, and its gradient keeps the true class's share when p_y rounds to 1", async () => {
  const logits = tf.tensor2d([
    [2, 1, -1],
    [40, 0, 1],
  ]);
  const onehot = tf.tensor2d([
    [0, 1, 0],
    [1, 0, 0],
  ]);
  const [ours, theirs, grad] = tf.tidy(() => [
    crossEntropy(logits, onehot),
    tf.losses.softmaxCrossEntropy(onehot, logits, undefined, 0, tf.Reduction.NONE),
    tf.grad((z: tf.Tensor) => tf.sum(crossEntropy(z as tf.Tensor2D, onehot)))(logits),
  ]);
  const [a, b, g] = (await Promise.all([ours.data(), theirs.data(), grad.data()])) as Float32Array[];
  expect(a[0]).toBeCloseTo(b[0], 5);
  expect(a[1]).toBeCloseTo(b[1], 5);
  // Row 2: p_0 = 1 − 4.2e−17 in float32 is 1, and softmax − onehot would give exactly 0.
  expect(g[3]).toBeLessThan(0);
  expect(g[3]).toBeCloseTo(-(Math.exp(-40) + Math.exp(-39)), 20);
  tf.dispose([logits, onehot, ours, theirs, grad]);
});

test("the square's size follows the paper's schedule, rescaled to the query budget", () => {
  expect(squareFraction(0.3, 0, 10000)).toBe(0.3);
  expect(squareFraction(0.3, 11, 10000)).toBe(0.15);
  expect(squareFraction(0.3, 250, 500)).toBeCloseTo(0.3 / 128); // 5000 of 10 000
  expect(squareFraction(0.3, 9999, 10000)).toBeCloseTo(0.3 / 512);
});

describe('advsieve attack', () => {
  const run = promisify(execFile);
  const BIN = path.join(__dirname, '..', '..', 'bin', 'advsieve.js');
  let out: string;
  beforeAll(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-attack-'));
  });
  afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

  test('--json: one row per file; each written PNG is 16-bit, has the input size and is classified as reported', async () => {
    const files = fixtureLabels()
      .slice(0, 2)
      .map((f) => f.file);
    const { stdout } = await run(
      'node',
      [BIN, 'attack', ...files, '--method', 'pgd', '--epsilon', '0.1', '--steps', '10', '--out', out, '--json'],
      { env: { ...process.env, LOG_LEVEL: 'warn', ADVSIEVE_BACKEND: 'wasm' } },
    );
    const rows = JSON.parse(stdout) as Array<Record<string, unknown>>;
    expect(rows).toHaveLength(2);
    for (const [i, row] of rows.entries()) {
      expect(Object.keys(row).sort()).toEqual(
        ['adversarial', 'epsilon', 'file', 'l2', 'linf', 'method', 'original', 'out', 'success'].sort(),
      );
      expect(row).toMatchObject({ file: files[i], method: 'pgd', epsilon: 0.1 });
      const adv = row.adversarial as { label: string; classIndex: number; confidence: number };
      const original = row.original as { classIndex: number };
      expect(row.success).toBe(adv.classIndex !== original.classIndex);
      expect(row.out).toBe(path.join(out, `${path.parse(files[i]).name}.pgd.png`));
      const png = fs.readFileSync(row.out as string);
      expect((await sharp(png).metadata()).depth).toBe('ushort');
      const decoded = await decodeImage(png, model.inputShape);
      expect(decoded.originalWidth).toBe(28);
      expect(decoded.originalHeight).toBe(28);
      const probs = (await model.runBatch(decoded.pixels, 1)).probs;
      expect(probs.indexOf(Math.max(...probs))).toBe(adv.classIndex);
      expect(adv.label).toBe(model.metadata.labels[adv.classIndex]);
      // The 8-bit decoding may round a pixel half a level further out.
      expect(row.linf as number).toBeLessThanOrEqual(0.1 + 1 / 255);
    }
  });

  test('an unreadable file gets an error row and exit code 1', async () => {
    const good = fixtureLabels()[0].file;
    const result = await run(
      'node',
      [BIN, 'attack', good, '/nonexistent.png', '--method', 'fgsm', '--epsilon', '0.1', '--out', out],
      { env: { ...process.env, LOG_LEVEL: 'warn', ADVSIEVE_BACKEND: 'wasm' } },
    ).then(
      () => ({ code: 0, stdout: '' }),
      (err: { code: number; stdout: string }) => err,
    );
    expect(result.code).toBe(1);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/ → .* L∞ \d\.\d{4}, L2 \d+\.\d{4} → .*\.fgsm\.png$/);
    expect(lines[1]).toMatch(/nonexistent.png: error FILE_NOT_FOUND/);
  });
});
