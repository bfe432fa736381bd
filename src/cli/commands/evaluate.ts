/**
 * `advsieve evaluate`: attacks N seeded official test images with every attack of the suite and
 * writes reports/evaluation.{md,json} and PNG plots; --json prints the result as the last line.
 */
import * as path from 'path';
import { Command } from 'commander';
import { calibrationPath, loadCalibration } from '../../calibration/calibrationFile';
import { DEFAULT_FASHION_MNIST_DIR, loadFashionMnist } from '../../data/fashionMnist';
import { initBackend } from '../../engine/backends';
import { InferenceModel } from '../../engine/model';
import { EVALUATION_ATTACKS, QUICK_ATTACKS } from '../../evaluation/attackSuite';
import { evaluate } from '../../evaluation/evaluate';
import { checkGoals, writeReport } from '../../evaluation/report';
import { Screener } from '../../screening/screener';
import { mulberry32, permutation } from '../../train/random';
import { defaultModelDir } from '../../util/paths';
import { intOption } from '../options';
import { stageProgress } from '../progress';

interface EvaluateCommandOptions {
  model: string;
  data: string;
  images: number;
  seed: number;
  out: string;
  attacks?: string;
  quick?: boolean;
  json?: boolean;
}

/** N test images drawn without replacement, seeded. */
function testSample(dir: string, n: number, seed: number) {
  const all = loadFashionMnist('test', dir);
  const order = permutation(all.count, mulberry32(seed)).subarray(0, Math.min(n, all.count));
  const size = all.height * all.width;
  const pixels = new Float32Array(order.length * size);
  const labels = new Int32Array(order.length);
  order.forEach((i, k) => {
    pixels.set(all.pixels.subarray(i * size, (i + 1) * size), k * size);
    labels[k] = all.labels[i];
  });
  return { pixels, labels, count: order.length };
}

export function registerEvaluate(program: Command): void {
  program
    .command('evaluate')
    .description(
      'attack test images with every attack; detector AUROC/TPR, defense accuracy, research claims; writes reports/',
    )
    .option('--model <dir>', 'model directory', defaultModelDir())
    .option('--data <dir>', 'Fashion-MNIST IDX directory (its test split is used)', DEFAULT_FASHION_MNIST_DIR)
    .option('--images <n>', 'test images', intOption, 1000)
    .option('--seed <n>', 'random seed (sample, attacks)', intOption, 1)
    .option('--out <dir>', 'report directory', 'reports')
    .option('--attacks <names>', `comma-separated subset of: ${EVALUATION_ATTACKS.map((a) => a.name).join(', ')}`)
    .option('--quick', 'a few cheap attacks with few steps (plumbing checks, not figures)')
    .option('--json', 'print the result object as the last line of stdout')
    .action(async (opts: EvaluateCommandOptions) => {
      const started = Date.now();
      const backend = await initBackend();
      const model = await InferenceModel.load(opts.model);
      const calibration = loadCalibration(calibrationPath(opts.model), model.stored.sha256);
      const screener = new Screener(calibration, model.metadata.labels);
      const suite = opts.quick ? QUICK_ATTACKS : EVALUATION_ATTACKS;
      const wanted = opts.attacks?.split(',').map((s) => s.trim());
      const unknown = wanted?.filter((n) => !suite.some((a) => a.name === n));
      if (unknown?.length)
        throw new Error(`unknown attack(s) ${unknown.join(', ')}; expected: ${suite.map((a) => a.name).join(', ')}`);
      const attacks = wanted ? suite.filter((a) => wanted.includes(a.name)) : suite;
      const images = testSample(opts.data, opts.images, opts.seed);
      const progress = stageProgress('evaluate', started);
      const { result, artifacts } = await evaluate(model, screener, images, {
        attacks,
        seed: opts.seed,
        onStage: progress.onStage,
        onProgress: progress.onProgress,
      });
      progress.stop();
      const written = await writeReport(opts.out, { ...result, seconds: (Date.now() - started) / 1000 }, artifacts, {
        command: `npx advsieve ${process.argv.slice(2).join(' ')}`,
        date: new Date().toISOString(),
        model: { id: model.metadata.id, sha256: model.stored.sha256 },
        backend: backend.name,
        calibration,
        labels: model.metadata.labels,
        imageShape: model.inputShape,
      });
      const goals = checkGoals(result);
      process.stdout.write(
        `wrote ${path.relative(process.cwd(), written.markdown)}, evaluation.json and ${written.plots.length} plots; ` +
          `clean accuracy ${(result.cleanAccuracy * 100).toFixed(2)} %, goals met ${goals.filter((g) => g.met).length}/${goals.length}\n`,
      );
      if (opts.json) process.stdout.write(JSON.stringify({ ...result, goals }) + '\n');
      model.dispose();
    });
}
