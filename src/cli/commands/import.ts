/**
 * `advsieve import DIR --id ID [--labels FILE] [--preprocess PRESET|JSON] [--activation-layers a,b]
 * [--logits NAME] [--input-size HxW] [--max-memory BYTES] [--models-dir DIR] [--json]`: a tfjs
 * layers or graph model becomes models/<id>/ (docs/byom.md, "Import"). A refusal is printed with
 * its code and exits 2.
 */
import { Command, InvalidArgumentError } from 'commander';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { describeBackend, initBackend } from '../../engine/backends';
import { isPreprocessingPreset, Preprocessing, PREPROCESSING_PRESETS } from '../../engine/preprocessing';
import { defaultMaxModelBytes, importModel, parseBytes } from '../../models/import';
import { ModelImportError } from '../../models/importError';
import { PACKAGE_ROOT } from '../../util/paths';
import { logger } from '../../util/logger';

function preprocessOption(value: string): Preprocessing {
  if (isPreprocessingPreset(value)) return PREPROCESSING_PRESETS[value];
  try {
    return JSON.parse(value) as Preprocessing; // checked against the input's channels by the import
  } catch {
    throw new InvalidArgumentError(
      `expected one of ${Object.keys(PREPROCESSING_PRESETS).join(', ')} or a JSON object, got '${value}'`,
    );
  }
}

function sizeOption(value: string): [number, number] {
  const m = /^(\d+)x(\d+)$/.exec(value);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1)
    throw new InvalidArgumentError(`expected HxW (e.g. 224x224), got '${value}'`);
  return [Number(m[1]), Number(m[2])];
}

function bytesOption(value: string): number {
  try {
    return parseBytes(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

interface ImportCliOptions {
  id: string;
  labels?: string;
  preprocess?: Preprocessing;
  activationLayers?: string;
  logits?: string;
  inputSize?: [number, number];
  maxMemory?: number;
  modelsDir: string;
  json?: boolean;
}

export function registerImport(program: Command): void {
  program
    .command('import')
    .description('import a tfjs layers or graph model (model.json and weights) as models/<id>/ with its metadata.json')
    .argument('<dir>', 'folder holding model.json and its weight files')
    .requiredOption('--id <id>', 'model id: the folder name under --models-dir')
    .option('--labels <file>', 'class labels: one per line, or a JSON array (default class_0 … class_{n-1})')
    .option(
      '--preprocess <preset>',
      `how pixels in [0, 1] become the network's input: ${Object.keys(PREPROCESSING_PRESETS).join(', ')}, or a JSON object {scale, offset, mean, std, channelOrder} (default unit)`,
      preprocessOption,
    )
    .option(
      '--activation-layers <names>',
      'comma-separated layers (graph nodes) for the detectors, instead of the rule',
    )
    .option('--logits <name>', 'the layer (graph node) giving the logits, for a model without a final softmax')
    .option('--input-size <HxW>', 'the input size, for a model whose input size is not fixed', sizeOption)
    .option(
      '--max-memory <bytes>',
      'refuse a model estimated to need more (e.g. 512M, 2G; default ADVSIEVE_MAX_MODEL_BYTES or 1G)',
      bytesOption,
    )
    .option('--models-dir <dir>', 'where models/<id>/ is written', path.join(PACKAGE_ROOT, 'models'))
    .option('--json', 'print the result, or {"error": {code, message}}, as JSON')
    .action(async (dir: string, opts: ImportCliOptions) => {
      logger.debug(describeBackend(await initBackend()));
      try {
        const result = await importModel({
          sourceDir: dir,
          id: opts.id,
          modelsDir: opts.modelsDir,
          labelsFile: opts.labels,
          preprocessing: opts.preprocess ?? PREPROCESSING_PRESETS.unit,
          activationLayers: opts.activationLayers
            ?.split(',')
            .map((s) => s.trim())
            .filter(Boolean),
          logits: opts.logits,
          inputSize: opts.inputSize,
          maxMemoryBytes: opts.maxMemory ?? defaultMaxModelBytes(),
        });
        const { metadata: md } = result;
        process.stdout.write(
          opts.json
            ? JSON.stringify(result, null, 2) + '\n'
            : `imported ${result.format} as ${result.dir}/ (sha256 ${result.sha256.slice(0, 16)}…)\n` +
                `  input ${md.inputShape.join('×')}, ${md.labels.length} classes, logits '${md.logitsLayer}'` +
                `${md.outputLayer ? `, probabilities '${md.outputLayer}'` : ' (probabilities: their softmax)'}\n` +
                `  activation layers: ${md.activationLayers.join(', ')}\n`,
        );
      } catch (err) {
        if (!(err instanceof ModelImportError)) throw err;
        if (opts.json) process.stdout.write(JSON.stringify({ error: { code: err.code, message: err.message } }) + '\n');
        else process.stderr.write(`advsieve import: refused (${err.code}): ${err.message}\n`);
        process.exitCode = 2;
      } finally {
        tf.disposeVariables();
      }
    });
}
