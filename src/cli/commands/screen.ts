/**
 * `advsieve screen FILE|DIR... [--recursive] [--defend] [--json|--jsonl]`: per file, the prediction,
 * every detector's score with its threshold, the verdict and (with --defend) the prediction after
 * the low-pass defense. The same Screener serves the GraphQL API. Folders (with --recursive) are
 * walked and screened a chunk of files at a time, so that a folder of any size runs in bounded
 * memory; --jsonl writes each verdict as it is made, one JSON object a line.
 */
import { Command } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
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

/** Files screened at once: one engine batch's worth, and all the memory a folder of any size takes. */
export const SCREEN_CHUNK = 64;

/**
 * The image files the arguments name, in order: a file as it is; a folder (with `recursive`) every
 * file under it, sorted by name at each level, hidden ones ('.' names) skipped. Yielded as found,
 * so that a folder of a million files is never listed whole.
 */
export async function* inputFiles(args: readonly string[], recursive: boolean): AsyncGenerator<string> {
  for (const arg of args) {
    const stat = await fs.promises.stat(arg).catch(() => undefined);
    if (!stat?.isDirectory()) {
      yield arg; // a missing file is reported in its row (FILE_NOT_FOUND)
      continue;
    }
    if (!recursive) throw new Error(`${arg} is a folder: pass --recursive to screen every image under it`);
    yield* walk(arg);
  }
}

async function* walk(dir: string): AsyncGenerator<string> {
  const entries = (await fs.promises.readdir(dir, { withFileTypes: true }))
    .filter((e) => !e.name.startsWith('.'))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) yield* walk(full);
    else if (e.isFile()) yield full;
  }
}

/** Chunks of at most `size` from an async sequence. */
async function* chunks<T>(items: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let chunk: T[] = [];
  for await (const item of items) {
    chunk.push(item);
    if (chunk.length === size) {
      yield chunk;
      chunk = [];
    }
  }
  if (chunk.length) yield chunk;
}

/**
 * How far a long run has got, on stderr: on a terminal one line rewritten in place, otherwise a line
 * every 10 s (logs stay readable), and a last line at the end.
 */
class ScreenProgress {
  private readonly started = performance.now();
  private lastLine = 0;
  done = 0;
  flagged = 0;
  failed = 0;

  constructor(private readonly enabled: boolean) {}

  add(rows: readonly ScreenRow[]): void {
    this.done += rows.length;
    this.failed += rows.filter((r) => 'error' in r).length;
    this.flagged += rows.filter((r) => 'detection' in r && r.detection.adversarial).length;
    const now = performance.now();
    if (this.enabled && (process.stderr.isTTY || now - this.lastLine >= 10_000)) {
      this.lastLine = now;
      process.stderr.write(`${process.stderr.isTTY ? '\r' : ''}${this.line()}${process.stderr.isTTY ? '' : '\n'}`);
    }
  }

  finish(): void {
    if (this.enabled) process.stderr.write(`${process.stderr.isTTY ? '\r' : ''}${this.line()}\n`);
  }

  private line(): string {
    const s = (performance.now() - this.started) / 1000;
    return `screen: ${this.done} images, ${this.flagged} flagged, ${this.failed} failed, ${(this.done / Math.max(s, 1e-3)).toFixed(1)} img/s, ${s.toFixed(0)} s`;
  }
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
    .argument('<files...>', 'image files (PNG, JPEG, WebP, GIF, TIFF), or folders with --recursive')
    .option('-r, --recursive', 'screen every file under the folders named (sorted, hidden ones skipped)')
    .option('--defend', 'also report the prediction after the low-pass defense')
    .option('--json', 'print one JSON array on stdout')
    .option('--jsonl', 'print one JSON object a line, each as soon as its image is judged (bounded memory)')
    .option('--no-progress', 'no progress line on stderr (it is shown for folders)')
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
          recursive?: boolean;
          progress: boolean;
          defend?: boolean;
          json?: boolean;
          jsonl?: boolean;
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
        if (opts.json && opts.jsonl) throw new Error('--json and --jsonl: choose one');
        const folders = await Promise.all(
          files.map((f) =>
            fs.promises.stat(f).then(
              (s) => s.isDirectory(),
              () => false,
            ),
          ),
        );
        const progress = new ScreenProgress(opts.progress && folders.some(Boolean));
        const kept: ScreenRow[] = []; // --json prints one array at the end: only it keeps the rows
        if (!opts.json && !opts.jsonl) process.stdout.write(LEGEND);
        for await (const chunk of chunks(inputFiles(files, opts.recursive === true), SCREEN_CHUNK)) {
          const rows = await screenFiles(chunk, model, screener, opts);
          if (opts.json) kept.push(...rows);
          else if (opts.jsonl) process.stdout.write(rows.map((r) => toJson(r, FLOAT_KEYS, 0) + '\n').join(''));
          else rows.forEach(printRow);
          progress.add(rows);
        }
        progress.finish();
        if (opts.json) process.stdout.write(toJson(kept, FLOAT_KEYS) + '\n');
        if (progress.failed > 0) process.exitCode = 1;
        else if (opts.failOnAdversarial && progress.flagged > 0) process.exitCode = ADVERSARIAL_EXIT_CODE;
        model.dispose();
      },
    );
}
