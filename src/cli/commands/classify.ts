/** `advsieve classify FILE... [--json]`: the model's prediction for each image file. */
import { Command } from 'commander';
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs';
import { describeBackend, initBackend } from '../../engine/backends';
import { BatchExtras, ImageOutput, InferenceModel, splitBatch } from '../../engine/model';
import { decodeImage, ImageDecodeError } from '../../images/decode';
import { ClassScore, prediction } from '../../screening/screener';
import { defaultModelDir } from '../../util/paths';
import { logger } from '../../util/logger';
import { toJson } from '../json';
import { intOption } from '../options';

/** Fields that are probabilities: always written as JSON floats. */
const FLOAT_KEYS = new Set(['confidence', 'score']);

export type ClassifyRow =
  | { file: string; label: string; classIndex: number; confidence: number; top: ClassScore[] }
  | { file: string; error: { code: string; message: string } };

/** Reads and decodes files; an unreadable or undecodable file yields an error row, not an exception. */
export async function loadImages(
  files: readonly string[],
  model: InferenceModel,
): Promise<Array<Float32Array | { code: string; message: string }>> {
  return Promise.all(
    files.map(async (file) => {
      try {
        return (await decodeImage(await fs.promises.readFile(file), model.inputShape)).pixels;
      } catch (err) {
        if (err instanceof ImageDecodeError) return { code: err.code, message: err.message };
        const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'UNREADABLE_FILE';
        return { code, message: (err as Error).message };
      }
    }),
  );
}

/**
 * Runs the images that decoded as one batch (with `extras` for screening); per file its output, or
 * its decoding error.
 */
export async function runDecoded(
  images: ReadonlyArray<Float32Array | { code: string; message: string }>,
  model: InferenceModel,
  extras?: BatchExtras,
): Promise<Array<ImageOutput | { code: string; message: string }>> {
  const good = images.flatMap((img, i) => (img instanceof Float32Array ? [i] : []));
  const size = model.imageSize;
  const pixels = new Float32Array(good.length * size);
  good.forEach((i, j) => pixels.set(images[i] as Float32Array, j * size));
  const outputs = good.length ? splitBatch(await model.runBatch(pixels, good.length, extras)) : [];
  return images.map((img, i) => (img instanceof Float32Array ? outputs[good.indexOf(i)] : img));
}

export async function classifyFiles(files: readonly string[], model: InferenceModel, k = 3): Promise<ClassifyRow[]> {
  const outputs = await runDecoded(await loadImages(files, model), model);
  return files.map((file, i) => {
    const out = outputs[i];
    return 'probs' in out ? { file, ...prediction(out.probs, model.metadata.labels, k) } : { file, error: out };
  });
}

export function registerClassify(program: Command): void {
  program
    .command('classify')
    .description("print the model's predicted label, class index and confidence for each image file")
    .argument('<files...>', 'image files (PNG, JPEG, WebP, GIF, TIFF)')
    .option('--json', 'print one JSON array on stdout')
    .option('--model <dir>', 'model directory', defaultModelDir())
    .option('--top <k>', 'classes listed per image', intOption, 3)
    .action(async (files: string[], opts: { json?: boolean; model: string; top: number }) => {
      const backend = await initBackend();
      logger.debug(describeBackend(backend));
      const model = await InferenceModel.load(opts.model);
      const rows = await classifyFiles(files, model, Math.max(1, opts.top));
      if (opts.json) {
        process.stdout.write(toJson(rows, FLOAT_KEYS) + '\n');
      } else {
        for (const r of rows) {
          if ('error' in r) process.stdout.write(`${r.file}: error ${r.error.code}: ${r.error.message}\n`);
          else
            process.stdout.write(
              `${r.file}: ${r.label} (class ${r.classIndex}, confidence ${(r.confidence * 100).toFixed(1)} %)\n`,
            );
        }
      }
      if (rows.some((r) => 'error' in r)) process.exitCode = 1;
      model.dispose();
      tf.disposeVariables();
    });
}
