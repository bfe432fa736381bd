/**
 * `advsieve screen FILE... [--defend] [--json]`: per file, the prediction, every detector's score
 * with its threshold, the verdict and (with --defend) the prediction after the low-pass defense.
 * The same Screener serves the GraphQL API.
 */
import { Command } from 'commander';
import { calibrationPath, loadCalibration } from '../../calibration/calibrationFile';
import { describeBackend, initBackend } from '../../engine/backends';
import { InferenceModel } from '../../engine/model';
import { Screener, ScreenOutcome } from '../../screening/screener';
import { defaultModelDir } from '../../util/paths';
import { logger } from '../../util/logger';
import { toJson } from '../json';
import { floatOption } from '../options';
import { loadImages, runDecoded } from './classify';

const FLOAT_KEYS = new Set(['confidence', 'score', 'threshold', 'targetFpr', 'radius']);

export type ScreenRow =
  | ({ file: string } & Omit<ScreenOutcome, 'defense'> & { defense?: ScreenOutcome['defense'] })
  | { file: string; error: { code: string; message: string } };

export async function screenFiles(
  files: readonly string[],
  model: InferenceModel,
  screener: Screener,
  options: { defend?: boolean; targetFpr?: number },
): Promise<ScreenRow[]> {
  const outputs = await runDecoded(await loadImages(files, model), model, screener.extras);
  return files.map((file, i) => {
    const out = outputs[i];
    if (!('probs' in out)) return { file, error: out };
    const { prediction, detection, defense } = screener.screen(out, { targetFpr: options.targetFpr });
    return options.defend ? { file, prediction, detection, defense } : { file, prediction, detection };
  });
}

function printRow(r: ScreenRow): void {
  if ('error' in r) {
    process.stdout.write(`${r.file}: error ${r.error.code}: ${r.error.message}\n`);
    return;
  }
  const p = r.prediction;
  const d = r.detection;
  process.stdout.write(
    `${r.file}: ${p.label} (class ${p.classIndex}, ${(p.confidence * 100).toFixed(1)} %) — ` +
      `${d.adversarial ? 'ADVERSARIAL' : 'clean'} (combined ${d.score.toFixed(3)} vs ${d.threshold.toFixed(3)})\n`,
  );
  for (const s of d.detectors)
    process.stdout.write(
      `    ${s.name.padEnd(20)} ${s.score.toFixed(4).padStart(10)} / ${s.threshold.toFixed(4)}${s.flagged ? '  flagged' : ''}\n`,
    );
  if (r.defense)
    process.stdout.write(
      `    after low-pass: ${r.defense.prediction.label} (class ${r.defense.prediction.classIndex})\n`,
    );
}

export function registerScreen(program: Command): void {
  program
    .command('screen')
    .description('classify each image and say whether it looks adversarial, with every detector score and threshold')
    .argument('<files...>', 'image files (PNG, JPEG, WebP, GIF, TIFF)')
    .option('--defend', 'also report the prediction after the low-pass defense')
    .option('--json', 'print one JSON array on stdout')
    .option(
      '--target-fpr <x>',
      "false-positive rate the thresholds are set for (default: the calibration's)",
      floatOption,
    )
    .option('--model <dir>', 'model directory', defaultModelDir())
    .option('--calibration <file>', 'calibration file (default: <model>/calibration.json)')
    .action(
      async (
        files: string[],
        opts: { defend?: boolean; json?: boolean; targetFpr?: number; model: string; calibration?: string },
      ) => {
        const backend = await initBackend();
        logger.debug(describeBackend(backend));
        const model = await InferenceModel.load(opts.model);
        const calibration = loadCalibration(opts.calibration ?? calibrationPath(opts.model), model.stored.sha256);
        const screener = new Screener(calibration, model.metadata.labels);
        const rows = await screenFiles(files, model, screener, opts);
        if (opts.json) process.stdout.write(toJson(rows, FLOAT_KEYS) + '\n');
        else rows.forEach(printRow);
        if (rows.some((r) => 'error' in r)) process.exitCode = 1;
        model.dispose();
      },
    );
}
