/**
 * `advsieve screen FILE... [--defend] [--json]`: per file, the prediction, every detector's score
 * with its threshold, the verdict and (with --defend) the prediction after the low-pass defense.
 * The same Screener serves the GraphQL API.
 */
import { Command } from 'commander';
import * as fs from 'fs';
import { decodeViews } from '../../images/decode';
import { ImageDecodeError } from '../../images/decodeErrors';
import { calibrationPath, loadCalibration } from '../../calibration/calibrationFile';
import { describeBackend, initBackend } from '../../engine/backends';
import { InferenceModel } from '../../engine/model';
import { Screener, ScreenOutcome } from '../../screening/screener';
import { mostSuspiciousView, ViewSummary } from '../../screening/views';
import { defaultModelDir } from '../../util/paths';
import { logger } from '../../util/logger';
import { toJson } from '../json';
import { floatOption } from '../options';
import { runDecoded } from './classify';

const FLOAT_KEYS = new Set(['confidence', 'score', 'threshold', 'targetFpr', 'radius']);

export type ScreenRow =
  | ({ file: string } & Omit<ScreenOutcome, 'defense'> & {
        defense?: ScreenOutcome['defense'];
        views: ViewSummary[];
        flaggedView: string | null;
      })
  | { file: string; error: { code: string; message: string } };

type Views = Array<{ name: string; pixels: Float32Array }> | { code: string; message: string };

/**
 * Every view of each file (src/images/decode.ts: alpha-dropped, frames), decoded in this process —
 * the CLI reads the operator's own files, one at a time, with no other client to protect; the
 * same structural limits apply. Multi-frame files are refused, as the service does by default.
 */
async function loadViews(files: readonly string[], model: InferenceModel): Promise<Views[]> {
  const out: Views[] = [];
  for (const file of files) {
    try {
      out.push([...(await decodeViews(await fs.promises.readFile(file), model.inputShape)).views]);
    } catch (err) {
      if (err instanceof ImageDecodeError) out.push({ code: err.code, message: err.message });
      else {
        const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'UNREADABLE_FILE';
        out.push({ code, message: (err as Error).message });
      }
    }
  }
  return out;
}

export async function screenFiles(
  files: readonly string[],
  model: InferenceModel,
  screener: Screener,
  options: { defend?: boolean; targetFpr?: number },
): Promise<ScreenRow[]> {
  const decoded = await loadViews(files, model);
  // Every view of every file in one batch; then each file's verdict over its views.
  const flat = decoded.flatMap((d) => (Array.isArray(d) ? d.map((v) => v.pixels) : []));
  const outputs = await runDecoded(flat, model, screener.extras);
  let next = 0;
  return files.map((file, i): ScreenRow => {
    const d = decoded[i];
    if (!Array.isArray(d)) return { file, error: d };
    const screened = d.map((v) => {
      const out = outputs[next++];
      if (!('probs' in out)) throw new Error(`view ${v.name} of ${file} has no output`);
      return { name: v.name, outcome: screener.screen(out, { targetFpr: options.targetFpr }) };
    });
    const { chosen, views, flaggedView } = mostSuspiciousView(screened);
    const { prediction, detection, defense } = chosen.outcome;
    const row = { file, prediction, detection, views, flaggedView };
    return options.defend ? { ...row, defense } : row;
  });
}

/** Printed once above the human-readable rows: what the columns are and what decides the verdict. */
const LEGEND =
  'verdict: ADVERSARIAL when the combined score passes its threshold; the combined score weighs every\n' +
  'detector (a detector may flag an image the verdict still calls clean, and the reverse).\n' +
  `    ${'detector'.padEnd(20)} ${'score'.padStart(10)} / threshold\n`;

/** Exit status of `--fail-on-adversarial` when an image is judged adversarial (errors stay 1). */
export const ADVERSARIAL_EXIT_CODE = 2;

function printRow(r: ScreenRow): void {
  if ('error' in r) {
    process.stdout.write(`${r.file}: error ${r.error.code}: ${r.error.message}\n`);
    return;
  }
  const p = r.prediction;
  const d = r.detection;
  process.stdout.write(
    `${r.file}: ${p.label} (class ${p.classIndex}, ${(p.confidence * 100).toFixed(1)} %) — ` +
      `${d.adversarial ? 'ADVERSARIAL' : 'clean'} (combined ${d.score.toFixed(3)} vs ${d.threshold.toFixed(3)})` +
      (r.views.length > 1
        ? ` — views: ${r.views.map((v) => `${v.name}${v.adversarial ? ' (flagged)' : ''}`).join(', ')}`
        : '') +
      '\n',
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
    .option(
      '--fail-on-adversarial',
      `exit with status ${ADVERSARIAL_EXIT_CODE} when any image is judged adversarial (for scripts and CI gates; an unreadable file is 1)`,
    )
    .action(
      async (
        files: string[],
        opts: {
          defend?: boolean;
          json?: boolean;
          targetFpr?: number;
          model: string;
          calibration?: string;
          failOnAdversarial?: boolean;
        },
      ) => {
        const backend = await initBackend();
        logger.debug(describeBackend(backend));
        const model = await InferenceModel.load(opts.model);
        const calibration = loadCalibration(opts.calibration ?? calibrationPath(opts.model), model.stored.sha256);
        const screener = new Screener(calibration, model.metadata.labels);
        const rows = await screenFiles(files, model, screener, opts);
        if (opts.json) process.stdout.write(toJson(rows, FLOAT_KEYS) + '\n');
        else {
          process.stdout.write(LEGEND);
          rows.forEach(printRow);
        }
        if (rows.some((r) => 'error' in r)) process.exitCode = 1;
        else if (opts.failOnAdversarial && rows.some((r) => 'detection' in r && r.detection.adversarial))
          process.exitCode = ADVERSARIAL_EXIT_CODE;
        model.dispose();
      },
    );
}
