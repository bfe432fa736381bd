/**
 * `advsieve import`: a tfjs layers or graph model (model.json and its weight files, as
 * tensorflowjs_converter writes them) becomes a model directory the service loads: the files
 * copied to <models-dir>/<id>/ and a metadata.json worked out from the model (labels, input shape,
 * preprocessing, the logits, the activation layers by the rule in activationRule.ts, the SHA-256).
 * What the service could not run is refused with a ModelImportError naming the file.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as path from 'path';
import {
  checkModelFiles,
  checkModelJson,
  checkWeightFiles,
  hashModelFiles,
  loadModelFiles,
  manifestFiles,
  ModelFileError,
  ModelJson,
  ModelMetadata,
  ModelTopology,
} from '../engine/modelStore';
import { Preprocessing, applyPreprocessing, preprocessingProblem } from '../engine/preprocessing';
import { BlockOutput, chooseActivationLayers } from './activationRule';
import { describeUnsupported, unsupportedOps } from './graphKernels';
import { ModelImportError } from './importError';
import { inspectGraph } from './inspectGraph';
import { inspectLayers } from './inspectLayers';
import { ModelInspection } from './modelInspection';

/**
 * Memory a model takes in one worker, as a multiple of its float32 weights: the weights (uint8 and
 * float16 ones are expanded to float32 when loaded), the backend's copy of them, and a batch's
 * activations and input gradient, which for image classifiers are of the same order.
 */
export const MEMORY_FACTOR = 4;
/** ADVSIEVE_MAX_MODEL_BYTES when unset: 1 GiB, a model of up to 64 M float32 parameters. */
export const DEFAULT_MAX_MODEL_BYTES = 2 ** 30;

export function defaultMaxModelBytes(): number {
  const env = process.env.ADVSIEVE_MAX_MODEL_BYTES;
  return env ? parseBytes(env) : DEFAULT_MAX_MODEL_BYTES;
}

/** '512M', '2G', '1048576' → bytes (K, M, G in powers of 1024). */
export function parseBytes(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]i?B?)?$/i.exec(value.trim());
  if (!m) throw new Error(`expected a size in bytes (e.g. 512M, 2G), got '${value}'`);
  const unit = (m[2] ?? '').charAt(0).toUpperCase();
  return Math.round(Number(m[1]) * 1024 ** ' KMG'.indexOf(unit || ' '));
}

export interface ImportOptions {
  /** Folder holding model.json and its weight files. */
  readonly sourceDir: string;
  readonly id: string;
  /** The model directory is written to <modelsDir>/<id>/. */
  readonly modelsDir: string;
  /** A file of labels: one per line, or a JSON array. Default class_0 … class_{n-1}. */
  readonly labelsFile?: string;
  readonly preprocessing?: Preprocessing;
  /** Instead of the rule's choice. */
  readonly activationLayers?: readonly string[];
  /** The logits layer (graph node), for a model without a final softmax. */
  readonly logits?: string;
  /** [height, width], for a model whose input size is not fixed. */
  readonly inputSize?: readonly [number, number];
  readonly maxMemoryBytes: number;
}

export interface ImportResult {
  readonly dir: string;
  readonly format: ModelTopology['format'];
  readonly metadata: ModelMetadata;
  readonly sha256: string;
  readonly estimatedBytes: number;
}

function readModelJson(file: string): ModelJson {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as ModelJson;
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ModelImportError('MODEL_FORMAT', file, missing ? 'missing' : `not valid JSON (${(err as Error).message})`);
  }
}

function asImportError(code: 'MODEL_FORMAT', err: unknown): never {
  if (err instanceof ModelFileError) throw new ModelImportError(code, err.file, err.message.slice(err.file.length + 2));
  throw err;
}

/** Weight files present, inside the folder, of the declared size; returns their float32 bytes once loaded. */
function checkWeights(dir: string, json: ModelJson): number {
  for (const group of json.weightsManifest ?? []) {
    for (const p of group.paths) {
      if (path.isAbsolute(p) || p.split(/[\\/]/).includes('..'))
        throw new ModelImportError('MODEL_FORMAT', path.join(dir, 'model.json'), `weight path '${p}' leaves the model's folder`);
    }
  }
  for (const f of manifestFiles(dir, json)) {
    if (!fs.existsSync(f)) throw new ModelImportError('MODEL_WEIGHTS_MISSING', f, 'missing (named in model.json weightsManifest)');
  }
  try {
    checkWeightFiles(dir, json);
  } catch (err) {
    asImportError('MODEL_FORMAT', err);
  }
  const specs = (json.weightsManifest ?? []).flatMap((g) => g.weights);
  return specs.reduce((s, w) => s + w.shape.reduce((a, b) => a * b, 1) * 4, 0);
}

/** [h, w, c] of the one image input, or a MODEL_NOT_IMAGE_INPUT refusal. */
function imageInput(file: string, m: ModelInspection, inputSize?: readonly [number, number]): [number, number, number] {
  const refuse = (why: string) => new ModelImportError('MODEL_NOT_IMAGE_INPUT', file, `not an image model: ${why}`);
  if (m.inputs.length !== 1) throw refuse(`it has ${m.inputs.length} inputs; one image input [batch, height, width, 1 or 3] is supported`);
  const shape = m.inputs[0];
  if (!shape || shape.length !== 4)
    throw refuse(`its input is ${JSON.stringify(shape ?? 'of unknown rank')}; [batch, height, width, 1 or 3] is supported`);
  const [, h, w, c] = shape;
  if (c !== 1 && c !== 3) throw refuse(`its input has ${c ?? 'unknown'} channels; 1 or 3 are supported`);
  if (m.inputDtypeProblem) throw refuse(m.inputDtypeProblem);
  if (inputSize) {
    if ((h !== null && h !== inputSize[0]) || (w !== null && w !== inputSize[1]))
      throw refuse(`--input-size ${inputSize.join('x')} differs from its input ${h}x${w}`);
    return [inputSize[0], inputSize[1], c];
  }
  if (h === null || w === null) throw refuse(`its input size is not fixed (${JSON.stringify(shape)}); give --input-size HxW`);
  return [h, w, c];
}

/** The logits and probabilities layers, or a MODEL_NO_LOGITS refusal. */
function logitsAndOutput(file: string, m: ModelInspection, logits?: string): { logits: string; output?: string } {
  const softmax = m.softmax && 'output' in m.softmax ? m.softmax : undefined;
  if (logits !== undefined) {
    if (!m.has(logits)) throw new ModelImportError('MODEL_METADATA', file, `--logits names '${logits}', which the model does not have`);
    return { logits, output: softmax?.output };
  }
  if (softmax) return { logits: softmax.logits, output: softmax.output };
  const why = m.softmax && 'problem' in m.softmax ? m.softmax.problem : 'it does not end in a softmax';
  throw new ModelImportError('MODEL_NO_LOGITS', file, `no logits found: ${why}; name the layer (graph node) giving them with --logits`);
}

function readLabels(file: string, classes: number): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ModelImportError('MODEL_METADATA', file, `cannot be read (${(err as Error).message})`);
  }
  const labels = text.trim().startsWith('[')
    ? (JSON.parse(text) as unknown[]).map(String)
    : text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  if (labels.length !== classes)
    throw new ModelImportError('MODEL_METADATA', file, `${labels.length} labels, but the model has ${classes} classes`);
  return labels;
}

/**
 * Runs `f` on the backend the service will use, turning a kernel it lacks (or any failure to run)
 * into a MODEL_UNSUPPORTED_OPS refusal.
 */
function dryRun<T>(file: string, what: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw new ModelImportError('MODEL_UNSUPPORTED_OPS', file, `the ${tf.getBackend()} backend cannot run its ${what}: ${(err as Error).message}`);
  }
}

export async function importModel(o: ImportOptions): Promise<ImportResult> {
  const modelFile = path.join(o.sourceDir, 'model.json');
  const json = readModelJson(modelFile);
  let topology: ModelTopology;
  try {
    topology = checkModelJson(modelFile, json);
  } catch (err) {
    asImportError('MODEL_FORMAT', err);
  }
  const floatBytes = checkWeights(o.sourceDir, json);
  const estimatedBytes = floatBytes * MEMORY_FACTOR;
  if (estimatedBytes > o.maxMemoryBytes) {
    throw new ModelImportError(
      'MODEL_TOO_LARGE',
      modelFile,
      `needs about ${estimatedBytes} bytes (${floatBytes} bytes of float32 weights × ${MEMORY_FACTOR}); the limit is ${o.maxMemoryBytes} (--max-memory, ADVSIEVE_MAX_MODEL_BYTES)`,
    );
  }
  if (topology.format === 'graph-model') {
    const missing = unsupportedOps(topology.nodes, tf.getBackend());
    if (missing.length)
      throw new ModelImportError('MODEL_UNSUPPORTED_OPS', modelFile, `the ${tf.getBackend()} backend cannot run these ops: ${describeUnsupported(missing)}`);
  }
  const { model } = await loadModelFiles(o.sourceDir).catch((err) => asImportError('MODEL_FORMAT', err));
  try {
    const m =
      topology.format === 'graph-model' ? inspectGraph(model as tf.GraphModel, topology.nodes) : inspectLayers(model as tf.LayersModel);
    const inputShape = imageInput(modelFile, m, o.inputSize);
    const { logits, output } = logitsAndOutput(modelFile, m, o.logits);
    const problem = o.preprocessing && preprocessingProblem(o.preprocessing, inputShape[2]);
    if (problem) throw new ModelImportError('MODEL_METADATA', modelFile, `--preprocess ${problem}`);
    for (const name of o.activationLayers ?? [])
      if (!m.has(name)) throw new ModelImportError('MODEL_METADATA', modelFile, `--activation-layers names '${name}', which the model does not have`);

    // One forward pass on the service's backend: every candidate's shape, and the number of classes.
    const blockNames = m.blocks.map((b) => b.name);
    const shapes = dryRun(modelFile, 'forward pass', () =>
      tf.tidy(() => {
        const x = applyPreprocessing(tf.zeros([1, ...inputShape]) as tf.Tensor4D, o.preprocessing);
        return m.outputs(x, [logits, ...blockNames]).map((t) => t.shape);
      }),
    );
    // And the input gradient, which attacks and calibration take: its kernels are others.
    dryRun(modelFile, 'input gradient', () =>
      tf.tidy(() => {
        const grad = tf.grad((x) => tf.sum(m.outputs(applyPreprocessing(x as tf.Tensor4D, o.preprocessing), [logits])[0]));
        grad(tf.zeros([1, ...inputShape])).dataSync();
      }),
    );
    const classes = shapes[0][shapes[0].length - 1];
    const blocks: BlockOutput[] = m.blocks.flatMap((b, i) => {
      const s = shapes[i + 1];
      return s.length === 4 ? [{ ...b, height: s[1], width: s[2] }] : [];
    });
    const activationLayers = o.activationLayers ?? chooseActivationLayers(blocks, m.penultimate(logits), logits);
    const labels = o.labelsFile ? readLabels(o.labelsFile, classes) : Array.from({ length: classes }, (_, i) => `class_${i}`);
    const metadata: ModelMetadata = {
      id: o.id,
      labels,
      inputShape,
      ...(output === undefined ? {} : { outputLayer: output }),
      logitsLayer: logits,
      activationLayers,
      ...(o.preprocessing ? { preprocessing: o.preprocessing } : {}),
    };
    const dir = writeModelDir(o, json, metadata);
    try {
      const { sha256 } = checkModelFiles(dir);
      return { dir, format: topology.format, metadata, sha256, estimatedBytes };
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      asImportError('MODEL_FORMAT', err);
    }
  } finally {
    model.dispose();
  }
}

/** Copies model.json and the weight files, writes metadata.json (sha256 included). */
function writeModelDir(o: ImportOptions, json: ModelJson, metadata: ModelMetadata): string {
  const dir = path.join(o.modelsDir, o.id);
  if (fs.existsSync(dir)) throw new ModelImportError('MODEL_EXISTS', dir, 'exists already; choose another --id or remove it');
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(o.sourceDir, 'model.json'), path.join(dir, 'model.json'));
  for (const p of (json.weightsManifest ?? []).flatMap((g) => g.paths)) {
    fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    fs.copyFileSync(path.join(o.sourceDir, p), path.join(dir, p));
  }
  const withHash = { ...metadata, sha256: hashModelFiles(dir) };
  fs.writeFileSync(path.join(dir, 'metadata.json'), JSON.stringify(withHash, null, 2) + '\n');
  return dir;
}
