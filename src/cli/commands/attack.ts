/**
 * `advsieve attack FILE... --method m --epsilon e --out DIR`: adversarial versions of image files,
 * written as 16-bit PNGs. The reported adversarial prediction and distances are those of the file as
 * written and decoded again (advsieve's own decoding), so `advsieve classify` on it agrees.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { AttackName, AttackTarget } from '../../attacks/attack';
import { detectorAwareTarget, lowPassTarget } from '../../attacks/adaptive';
import { calibrationPath, loadCalibration } from '../../calibration/calibrationFile';
import { Screener } from '../../screening/screener';
import { ATTACK_NAMES, getAttack } from '../../attacks/registry';
import { modelTarget } from '../../attacks/target';
import { describeBackend, initBackend } from '../../engine/backends';
import { InferenceModel } from '../../engine/model';
import { decodeImage } from '../../images/decode';
import { encodePng16 } from '../../images/encode';
import { defaultModelDir } from '../../util/paths';
import { logger } from '../../util/logger';
import { toJson } from '../json';
import { floatOption, intOption } from '../options';
import { topK } from '../../screening/screener';
import { loadImages } from './classify';

/** Fields that are real numbers: always written as JSON floats. */
const FLOAT_KEYS = new Set(['confidence', 'epsilon', 'linf', 'l2']);

export interface Prediction {
  readonly label: string;
  readonly classIndex: number;
  readonly confidence: number;
}

export type AttackRow =
  | {
      file: string;
      out: string;
      method: AttackName;
      epsilon: number;
      original: Prediction;
      adversarial: Prediction;
      success: boolean;
      linf: number;
      l2: number;
    }
  | { file: string; error: { code: string; message: string } };

export interface AttackFilesOptions {
  readonly method: AttackName;
  readonly epsilon: number;
  readonly out: string;
  /** Targeted attack towards this class for every file. */
  readonly target?: number;
  /** The true label of every file; default: the model's prediction on the clean image. */
  readonly label?: number;
  readonly steps?: number;
  readonly stepSize?: number;
  readonly seed?: number;
  /** Who the attacker differentiates: the model (default), or an adaptive target (src/attacks/adaptive.ts). */
  readonly attackTarget?: AttackTarget;
}

/** A non-negative number, or inf / Infinity (CW-L2 without an L2 bound). */
export function epsilonOption(value: string): number {
  if (/^(inf|infinity)$/i.test(value)) return Infinity;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`expected a number ≥ 0 or 'inf', got '${value}'`);
  return n;
}

function prediction(probs: Float32Array, labels: readonly string[]): Prediction {
  const [top] = topK(probs, labels, 1);
  return { label: top.label, classIndex: top.classIndex, confidence: top.score };
}

function distances(a: Float32Array, b: Float32Array): { linf: number; l2: number } {
  let linf = 0;
  let sq = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    linf = Math.max(linf, d);
    sq += d * d;
  }
  return { linf, l2: Math.sqrt(sq) };
}

function checkClass(name: string, value: number | undefined, numClasses: number): void {
  if (value !== undefined && value >= numClasses)
    throw new RangeError(`${name}: expected a class index below ${numClasses}, got ${value}`);
}

/** Runs the attack on the images it runs on (one batch); returns their adversarial pixels. */
async function attackPixels(
  model: InferenceModel,
  pixels: Float32Array,
  labels: Int32Array,
  opts: AttackFilesOptions,
): Promise<Float32Array> {
  const x = tf.tensor4d(pixels, [labels.length, ...model.inputShape]);
  try {
    const adv = await getAttack(opts.method).run(opts.attackTarget ?? modelTarget(model), x, labels, {
      epsilon: opts.epsilon,
      targets: opts.target === undefined ? undefined : new Int32Array(labels.length).fill(opts.target),
      steps: opts.steps,
      stepSize: opts.stepSize,
      seed: opts.seed,
    });
    try {
      return (await adv.data()) as Float32Array;
    } finally {
      adv.dispose();
    }
  } finally {
    x.dispose();
  }
}

export async function attackFiles(
  files: readonly string[],
  model: InferenceModel,
  opts: AttackFilesOptions,
): Promise<AttackRow[]> {
  const names = model.metadata.labels;
  checkClass('--target', opts.target, names.length);
  checkClass('--label', opts.label, names.length);
  const images = await loadImages(files, model);
  const good = images.flatMap((img, i) => (img instanceof Float32Array ? [i] : []));
  if (!good.length) return files.map((file, i) => ({ file, error: images[i] as { code: string; message: string } }));
  const size = model.imageSize;
  const k = names.length;
  const pixels = new Float32Array(good.length * size);
  good.forEach((i, j) => pixels.set(images[i] as Float32Array, j * size));
  const clean = await model.runBatch(pixels, good.length);
  const labels = Int32Array.from(
    good,
    (_, j) => opts.label ?? prediction(clean.probs.subarray(j * k, (j + 1) * k), names).classIndex,
  );
  const adversarial = await attackPixels(model, pixels, labels, opts);
  await fs.promises.mkdir(opts.out, { recursive: true });
  const outs = good.map((i) => path.join(opts.out, `${path.parse(files[i]).name}.${opts.method}.png`));
  // What was written, decoded as any image file is: the reported numbers describe the file.
  const written = new Float32Array(good.length * size);
  for (const [j, out] of outs.entries()) {
    const png = await encodePng16(adversarial.subarray(j * size, (j + 1) * size), model.inputShape);
    await fs.promises.writeFile(out, png);
    written.set((await decodeImage(png, model.inputShape)).pixels, j * size);
  }
  const after = await model.runBatch(written, good.length);
  return files.map((file, i) => {
    const j = good.indexOf(i);
    if (j < 0) return { file, error: images[i] as { code: string; message: string } };
    const original = prediction(clean.probs.subarray(j * k, (j + 1) * k), names);
    const adv = prediction(after.probs.subarray(j * k, (j + 1) * k), names);
    const success = opts.target === undefined ? adv.classIndex !== labels[j] : adv.classIndex === opts.target;
    const d = distances(written.subarray(j * size, (j + 1) * size), pixels.subarray(j * size, (j + 1) * size));
    return {
      file,
      out: outs[j],
      method: opts.method,
      epsilon: opts.epsilon,
      original,
      adversarial: adv,
      success,
      ...d,
    };
  });
}

function formatRow(r: AttackRow): string {
  if ('error' in r) return `${r.file}: error ${r.error.code}: ${r.error.message}\n`;
  const p = (q: Prediction) => `${q.label} (class ${q.classIndex}, ${(q.confidence * 100).toFixed(1)} %)`;
  return (
    `${r.file}: ${p(r.original)} → ${p(r.adversarial)}: ${r.success ? 'success' : 'failure'}, ` +
    `L∞ ${r.linf.toFixed(4)}, L2 ${r.l2.toFixed(4)} → ${r.out}\n`
  );
}

interface CliOptions {
  method: AttackName;
  epsilon: number;
  out: string;
  target?: number;
  label?: number;
  steps?: number;
  stepSize?: number;
  seed: number;
  json?: boolean;
  model: string;
}

export function registerAttack(program: Command): void {
  program
    .command('attack')
    .description('write an adversarial version of each image file (16-bit PNG) and report what it does to the model')
    .argument('<files...>', 'image files (PNG, JPEG, WebP, GIF, TIFF)')
    .addOption(new Option('--method <name>', 'attack').choices(ATTACK_NAMES).makeOptionMandatory())
    .requiredOption(
      '--epsilon <e>',
      "budget: L∞ radius (fgsm, pgd, square) or L2 bound (cw; 'inf' for none)",
      epsilonOption,
    )
    .requiredOption('--out <dir>', 'directory for <name>.<method>.png')
    .option('--target <k>', 'targeted: the class index to reach', intOption)
    .option('--label <k>', "true class index of every file (default: the model's prediction)", intOption)
    .option('--steps <n>', 'iterations (pgd, cw per search step) or queries (square)', intOption)
    .option('--step-size <s>', 'step size (pgd) or learning rate (cw)', floatOption)
    .option('--seed <n>', 'seed of random starts and random search', intOption, 0)
    .addOption(
      new Option(
        '--adaptive <to>',
        "adaptive attack: through the calibrated low-pass filter ('lowpass'), also pushing every detector and the verdict under its threshold ('detectors'), or the verdict alone ('verdict')",
      ).choices(['lowpass', 'detectors', 'verdict']),
    )
    .option('--json', 'print one JSON array on stdout')
    .option('--model <dir>', 'model directory', defaultModelDir())
    .action(async (files: string[], opts: CliOptions & { adaptive?: 'lowpass' | 'detectors' | 'verdict' }) => {
      const backend = await initBackend();
      logger.debug(describeBackend(backend));
      const model = await InferenceModel.load(opts.model);
      try {
        let attackTarget: AttackTarget | undefined;
        if (opts.adaptive) {
          const calibration = loadCalibration(calibrationPath(opts.model), model.stored.sha256);
          attackTarget =
            opts.adaptive === 'lowpass'
              ? lowPassTarget(model, calibration.lowPass)
              : detectorAwareTarget(
                  model,
                  new Screener(calibration, model.metadata.labels),
                  undefined,
                  opts.adaptive === 'verdict' ? 'verdict' : 'every',
                );
        }
        const rows = await attackFiles(files, model, { ...opts, attackTarget });
        if (opts.json) process.stdout.write(toJson(rows, FLOAT_KEYS) + '\n');
        else for (const r of rows) process.stdout.write(formatRow(r));
        if (rows.some((r) => 'error' in r)) process.exitCode = 1;
      } finally {
        model.dispose();
        tf.disposeVariables();
      }
    });
}
