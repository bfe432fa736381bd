/**
 * `advsieve evaluate`: attacks held-out images with every attack of a suite and writes
 * evaluation.{md,json} and PNG plots; --json prints the result as the last line. The images are
 * Fashion-MNIST's test split (the bundled model) or a folder of class folders (`--images DIR`,
 * the same flag as calibrate's, e.g. the corpus' evaluation/ half that calibration never saw).
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Command, Option } from 'commander';
import { calibrationPath, loadCalibration } from '../../calibration/calibrationFile';
import { DEFAULT_FASHION_MNIST_DIR } from '../../data/fashionMnist';
import { pickImages, readLabelledImages } from '../../data/labelledImages';
import { describeTestPart, testSplitParts } from '../../data/testSplitParts';
import { initBackend } from '../../engine/backends';
import { InferenceModel } from '../../engine/model';
import { AttackSpec, EVALUATION_ATTACKS, photoAttacks, QUICK_ATTACKS } from '../../evaluation/attackSuite';
import { evaluate } from '../../evaluation/evaluate';
import { cleanFalsePositives } from '../../evaluation/falsePositives';
import { mergeEvaluations, readPart } from '../../evaluation/merge';
import { checkGoals, writeReport } from '../../evaluation/report';
import { Screener } from '../../screening/screener';
import { mulberry32, permutation } from '../../train/random';
import { defaultModelDir } from '../../util/paths';
import { intOption } from '../options';
import { stageProgress } from '../progress';

const SUITES = ['fashion', 'photo', 'quick'] as const;
type SuiteName = (typeof SUITES)[number];

interface EvaluateCommandOptions {
  model: string;
  calibration?: string;
  data: string;
  images?: string;
  labels: 'folders' | 'predicted';
  count?: number;
  seed: number;
  out?: string;
  suite?: SuiteName;
  steps: number;
  attacks?: string;
  quick?: boolean;
  merge?: string;
  processes: number;
  json?: boolean;
  offset: number;
}

/**
 * Up to n of the images, drawn without replacement, seeded (the order drawn: the same sample as before
 * folders), after skipping the first `offset` of that order: disjoint offsets split one draw across
 * processes (`--offset 500 --count 500` is the second half of `--count 1000`'s images).
 */
export function sample(
  set: { pixels: Float32Array; labels: Int32Array; count: number },
  n: number,
  seed: number,
  size: number,
  offset = 0,
) {
  if (offset === 0 && n >= set.count) return set;
  const { pixels, labels, count } = pickImages(
    set,
    permutation(set.count, mulberry32(seed)).subarray(offset, offset + n),
    size,
  );
  return { pixels, labels, count };
}

/**
 * `--images` was a count before it named a folder, as calibrate's does: a bare number still means
 * the count (with a note), so that scripts written for the old flag keep running.
 */
function imagesOption(opts: EvaluateCommandOptions): { images?: string; count?: number } {
  if (opts.images !== undefined && /^\d+$/.test(opts.images)) {
    process.stderr.write(
      `evaluate: --images ${opts.images} read as --count ${opts.images} (--images names a folder now)\n`,
    );
    return { count: opts.count ?? Number(opts.images) };
  }
  return { images: opts.images, count: opts.count };
}

function suiteOf(opts: EvaluateCommandOptions, model: InferenceModel): readonly AttackSpec[] {
  const name: SuiteName = opts.quick ? 'quick' : (opts.suite ?? (model.inputShape[2] === 3 ? 'photo' : 'fashion'));
  const suite =
    name === 'quick'
      ? QUICK_ATTACKS
      : name === 'photo'
        ? photoAttacks(model.metadata.labels, opts.steps)
        : EVALUATION_ATTACKS;
  const wanted = opts.attacks?.split(',').map((s) => s.trim());
  const unknown = wanted?.filter((n) => !suite.some((a) => a.name === n));
  if (unknown?.length)
    throw new Error(`unknown attack(s) ${unknown.join(', ')}; expected: ${suite.map((a) => a.name).join(', ')}`);
  return wanted ? suite.filter((a) => wanted.includes(a.name)) : suite;
}

export function registerEvaluate(program: Command): void {
  program
    .command('evaluate')
    .description(
      'attack held-out images with every attack; detector AUROC/TPR, defense accuracy, research claims; writes reports/',
    )
    .option('--model <dir>', 'model directory', defaultModelDir())
    .option('--calibration <file>', "calibration file (default: the model directory's calibration.json)")
    .option(
      '--data <dir>',
      'Fashion-MNIST IDX directory (its test split is used without --images)',
      DEFAULT_FASHION_MNIST_DIR,
    )
    .option(
      '--images <dir>',
      "evaluate on a folder instead: one sub-folder of images per class, as calibrate's --images (use images calibration did not see)",
    )
    .addOption(
      new Option('--labels <source>', "where --images' classes come from: 'folders' or 'predicted'")
        .choices(['folders', 'predicted'])
        .default('folders'),
    )
    .option('--count <n>', 'images evaluated at most, drawn seeded (default: 1000)', intOption)
    .option('--seed <n>', 'random seed (sample, attacks)', intOption, 1)
    .option(
      '--offset <n>',
      "skip the first n images of the seeded draw: disjoint offsets split one evaluation across processes (e.g. --offset 500 --count 500 is the second half of --count 1000's images; each process's attacks draw their own random starts)",
      intOption,
      0,
    )
    .option('--out <dir>', 'report directory (default: reports/ for the bundled model, reports/<id>/ for others)')
    .addOption(
      new Option('--suite <name>', 'attack suite (default: photo for RGB models, fashion for grey ones)').choices([
        ...SUITES,
      ]),
    )
    .option('--steps <n>', "iterations of the photo suite's iterative attacks", intOption, 10)
    .option('--attacks <names>', 'comma-separated subset of the suite’s rows')
    .option('--quick', 'a few cheap attacks with few steps (plumbing checks, not figures): --suite quick')
    .option('--json', 'print the result object as the last line of stdout')
    .option(
      '--processes <n>',
      'split the images across n processes of this command (disjoint --offset parts in <out>/part-<offset>/, each logging to its evaluate.log) and merge their reports into <out>: one per core',
      intOption,
      1,
    )
    .option(
      '--merge <dirs>',
      'attack nothing: pool the reports of parts run apart with disjoint --offset (comma-separated report directories) into one report in --out',
    )
    .action(async (opts: EvaluateCommandOptions) => {
      if (opts.merge !== undefined) {
        if (!opts.out) throw new RangeError('--merge needs --out: the directory the pooled report is written to');
        if (opts.processes > 1) throw new RangeError('--merge attacks nothing: --processes has nothing to split');
        return mergeParts(
          opts.merge
            .split(',')
            .map((d) => d.trim())
            .filter(Boolean),
          opts.out,
          opts,
        );
      }
      if (!(opts.processes >= 1)) throw new RangeError(`--processes: expected an integer ≥ 1, got ${opts.processes}`);
      const started = Date.now();
      const backend = await initBackend();
      const model = await InferenceModel.load(opts.model);
      const calibration = loadCalibration(opts.calibration ?? calibrationPath(opts.model), model.stored.sha256);
      const screener = new Screener(calibration, model.metadata.labels);
      const attacks = suiteOf(opts, model);
      const { images: folder, count } = imagesOption(opts);
      const progress = stageProgress('evaluate', started);
      const wanted = count ?? 1000;
      const read = await readLabelledImages(
        { images: folder, labels: opts.labels, data: opts.data, split: 'test' },
        model,
        progress,
      );
      // Thresholds read on a part of the test split: nothing here is measured on that part.
      const part = folder ? undefined : calibration.data.thresholds?.testPart;
      const pool = part
        ? pickImages(read, testSplitParts(part).evaluation, model.imageSize, describeTestPart(part, 'evaluation'))
        : read;
      if (opts.offset >= pool.count) throw new RangeError(`--offset ${opts.offset}: the pool has ${pool.count} images`);
      const id = model.metadata.id;
      const out = opts.out ?? (id === 'fashion-cnn' ? 'reports' : path.join('reports', id));
      if (opts.processes > 1) {
        progress.stop();
        model.dispose();
        return evaluateInProcesses(opts, folder, Math.min(wanted, pool.count - opts.offset), out);
      }
      const images = sample(pool, wanted, opts.seed, model.imageSize, opts.offset);
      process.stderr.write(
        `evaluate: ${id}, ${images.count} images of ${pool.source}, ${attacks.length} attacks: ${attacks.map((a) => a.name).join(', ')}\n`,
      );
      const { result, artifacts } = await evaluate(model, screener, images, {
        attacks,
        seed: opts.seed,
        onStage: progress.onStage,
        onProgress: progress.onProgress,
      });
      progress.onStage(`clean false-positive rate on all ${pool.count} images of ${pool.source}`);
      const falsePositives = await cleanFalsePositives(
        model,
        screener,
        pool,
        [...new Set([calibration.defaultTargetFpr, 0.01])],
        progress.onProgress,
      );
      progress.stop();
      // The report, the goals printed and --json's object are all of the whole result, clean rate included.
      const whole = { ...result, falsePositives, seconds: (Date.now() - started) / 1000 };
      const written = await writeReport(path.resolve(out), whole, artifacts, {
        command: `npx advsieve ${process.argv.slice(2).join(' ')}`,
        date: new Date().toISOString(),
        model: { id: model.metadata.id, sha256: model.stored.sha256 },
        backend: backend.name,
        images: pool.source,
        ...(opts.offset ? { offset: opts.offset } : {}),
        calibration,
        labels: model.metadata.labels,
        imageShape: model.inputShape,
      });
      const goals = checkGoals(whole);
      process.stdout.write(
        `wrote ${path.relative(process.cwd(), written.markdown)}, evaluation.json and ${written.plots.length} plots; ` +
          `clean accuracy ${(result.cleanAccuracy * 100).toFixed(2)} %, goals met ${goals.filter((g) => g.met).length}/${goals.length}\n`,
      );
      if (opts.json) process.stdout.write(JSON.stringify({ ...whole, goals }) + '\n');
      model.dispose();
    });
}

/**
 * `evaluate --merge A,B,… --out DIR`: one report from parts of one draw run apart
 * (src/evaluation/merge.ts). The thresholds a detection counts at are the calibration's, read
 * again: the parts must have been run with it (its date is checked against theirs).
 */
async function mergeParts(dirs: readonly string[], out: string, opts: EvaluateCommandOptions): Promise<void> {
  const parts = dirs.map((d) => readPart(path.resolve(d)));
  const calibration = loadCalibration(opts.calibration ?? calibrationPath(opts.model), parts[0].context.model.sha256);
  const { createdAt } = parts[0].context.calibration;
  if (calibration.createdAt !== createdAt)
    throw new RangeError(
      `the parts were run with the calibration of ${createdAt}; ${opts.calibration ?? calibrationPath(opts.model)} is of ${calibration.createdAt} (pass --model or --calibration)`,
    );
  // The deployed thresholds, read as screening reads them.
  const thresholds = new Screener(calibration, parts[0].context.labels).thresholds();
  const { result, artifacts, context } = mergeEvaluations(parts, thresholds);
  const written = await writeReport(path.resolve(out), result, artifacts, {
    ...context,
    command: `npx advsieve ${process.argv.slice(2).join(' ')}`,
    date: new Date().toISOString(),
    // The parts' directories as the user named them: relative to where the command ran.
    parts: context.parts!.map((p) => ({ ...p, dir: path.relative(process.cwd(), p.dir) })),
  });
  const goals = checkGoals(result);
  process.stdout.write(
    `merged ${parts.length} parts (${result.images} images) into ${path.relative(process.cwd(), written.markdown)}; ` +
      `goals met ${goals.filter((g) => g.met).length}/${goals.length}\n`,
  );
  if (opts.json) process.stdout.write(JSON.stringify({ ...result, goals }) + '\n');
}

/**
 * `evaluate --processes N`: the draw's images in N contiguous parts, each evaluated by a child
 * process of this command (one wasm engine is one core), then merged. A part that fails stops the
 * others: a merge of what is left would not be the draw asked for.
 */
async function evaluateInProcesses(
  opts: EvaluateCommandOptions,
  folder: string | undefined,
  total: number,
  out: string,
): Promise<void> {
  const share = Math.ceil(total / Math.min(opts.processes, total));
  const spans = [];
  for (let from = 0; from < total; from += share)
    spans.push({ offset: opts.offset + from, count: Math.min(share, total - from) });
  // What each part is told: the settings of this call, its own span and report directory.
  const common = [
    ...['--model', opts.model, '--data', opts.data, '--seed', String(opts.seed), '--steps', String(opts.steps)],
    ...(opts.calibration ? ['--calibration', opts.calibration] : []),
    ...(folder ? ['--images', folder, '--labels', opts.labels] : []),
    ...(opts.suite ? ['--suite', opts.suite] : []),
    ...(opts.attacks ? ['--attacks', opts.attacks] : []),
    ...(opts.quick ? ['--quick'] : []),
  ];
  const dirs = spans.map((s) => path.join(out, `part-${s.offset}`));
  process.stderr.write(
    `evaluate: ${total} images in ${spans.length} processes (images ${spans.map((s) => `${s.offset}–${s.offset + s.count - 1}`).join(', ')} of the draw); ` +
      `each one's progress in ${path.join(out, 'part-*', 'evaluate.log')}\n`,
  );
  const children: ChildProcess[] = [];
  await Promise.all(
    spans.map(
      (s, k) =>
        new Promise<void>((resolve, reject) => {
          fs.mkdirSync(dirs[k], { recursive: true });
          const log = path.join(dirs[k], 'evaluate.log');
          const fd = fs.openSync(log, 'w');
          const args = [...common, '--offset', String(s.offset), '--count', String(s.count), '--out', dirs[k]];
          const child = spawn(process.execPath, [process.argv[1], 'evaluate', ...args], {
            stdio: ['ignore', 'ignore', fd],
          });
          children.push(child);
          child.on('exit', (code, signal) => {
            fs.closeSync(fd);
            if (code === 0) return resolve();
            for (const other of children) if (other !== child && other.exitCode === null) other.kill();
            const tail = fs
              .readFileSync(log, 'utf8')
              .split(/[\r\n]+/)
              // The last words, not the progress bars.
              .filter((line) => line.trim() && !/^\s*\[[=-]*\]/.test(line))
              .slice(-2)
              .join(' / ');
            reject(
              new Error(
                `the part of images ${s.offset}–${s.offset + s.count - 1} failed (${signal ?? `exit ${code}`}): ${tail} (${log})`,
              ),
            );
          });
        }),
    ),
  );
  await mergeParts(dirs, out, opts);
}
