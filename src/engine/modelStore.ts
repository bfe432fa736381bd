/**
 * Model files on disk, without tfjs-node: `models/<id>/model.json` (tfjs layers format),
 * its weight files, and `metadata.json` (labels, input shape, the layers whose activations the
 * detectors read). A file-system IO handler reads and writes them; the SHA-256 of model.json and
 * the weights identifies the model (calibrations name the model they belong to by it).
 */
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

export interface ModelMetadata {
  readonly id: string;
  readonly labels: readonly string[];
  /** [height, width, channels] of one input image, pixel values in [0, 1]. */
  readonly inputShape: readonly [number, number, number];
  /** Layer giving class probabilities (softmax). */
  readonly outputLayer: string;
  /** Layer giving the pre-softmax scores, for attacks and promotion/suppression analysis. */
  readonly logitsLayer: string;
  /** Layers whose activations the detectors use, input side first. */
  readonly activationLayers: readonly string[];
  readonly training?: Record<string, unknown>;
}

export interface StoredModel {
  readonly model: tf.LayersModel;
  readonly metadata: ModelMetadata;
  /** Hex SHA-256 over model.json and the weight files, in manifest order. */
  readonly sha256: string;
  readonly dir: string;
}

export class ModelFileError extends Error {
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = 'ModelFileError';
  }
}

const WEIGHTS_FILE = 'weights.bin';

function readJson<T>(file: string): T {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ModelFileError(
      file,
      (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (err as Error).message,
    );
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new ModelFileError(file, `not valid JSON (${(err as Error).message})`);
  }
}

export async function saveModel(model: tf.LayersModel, dir: string, metadata: ModelMetadata): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const modelJson = {
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs }],
      };
      fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(modelJson));
      const data = artifacts.weightData as ArrayBuffer;
      fs.writeFileSync(path.join(dir, WEIGHTS_FILE), Buffer.from(data));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  fs.writeFileSync(path.join(dir, 'metadata.json'), JSON.stringify(metadata, null, 2) + '\n');
  return hashModelFiles(dir);
}

interface ModelJson {
  modelTopology?: object;
  weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

function manifestFiles(dir: string, json: ModelJson): string[] {
  return (json.weightsManifest ?? []).flatMap((g) => g.paths.map((p) => path.join(dir, p)));
}

export function hashModelFiles(dir: string): string {
  const modelFile = path.join(dir, 'model.json');
  const hash = createHash('sha256');
  const json = fs.readFileSync(modelFile);
  hash.update(json);
  for (const f of manifestFiles(dir, JSON.parse(json.toString('utf8')) as ModelJson)) hash.update(fs.readFileSync(f));
  return hash.digest('hex');
}

function bytesPerElement(w: tf.io.WeightsManifestEntry): number {
  const stored = w.quantization?.dtype ?? w.dtype;
  return stored === 'uint8' || stored === 'bool' ? 1 : stored === 'uint16' || stored === 'float16' ? 2 : 4;
}

interface LayerJson {
  readonly class_name?: string;
  readonly name?: string;
  readonly config?: { name?: string; units?: number; batch_input_shape?: Array<number | null> };
}

/** The layers of a Sequential or functional topology (Keras' `model_config` wrapper or not). */
function topologyLayers(topology: object): LayerJson[] | undefined {
  const t = topology as { model_config?: object; config?: unknown };
  const config = (t.model_config as { config?: unknown } | undefined)?.config ?? t.config;
  const layers = Array.isArray(config) ? config : (config as { layers?: unknown } | undefined)?.layers;
  return Array.isArray(layers) ? (layers as LayerJson[]) : undefined;
}

function checkModelJson(file: string, json: ModelJson & { format?: unknown }): LayerJson[] {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new ModelFileError(file, 'not a tfjs layers model (not a JSON object)');
  if (json.format !== undefined && json.format !== 'layers-model')
    throw new ModelFileError(file, `not a tfjs layers model (format '${String(json.format)}')`);
  if (typeof json.modelTopology !== 'object' || json.modelTopology === null || !Array.isArray(json.weightsManifest))
    throw new ModelFileError(file, 'not a tfjs layers model (modelTopology or weightsManifest missing)');
  const groupsOk = json.weightsManifest.every(
    (g) =>
      Array.isArray(g?.paths) &&
      g.paths.every((p) => typeof p === 'string') &&
      Array.isArray(g.weights) &&
      g.weights.every((w) => Array.isArray(w?.shape) && typeof w.dtype === 'string'),
  );
  if (!groupsOk) throw new ModelFileError(file, 'weightsManifest is malformed (groups of paths and weights expected)');
  const layers = topologyLayers(json.modelTopology);
  if (!layers?.length) throw new ModelFileError(file, 'not a tfjs layers model (modelTopology has no layers)');
  return layers;
}

function checkWeightFiles(dir: string, json: ModelJson): void {
  const files = manifestFiles(dir, json);
  let size = 0;
  for (const f of files) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(f);
    } catch {
      throw new ModelFileError(f, 'missing (named in model.json weightsManifest)');
    }
    if (!stat.isFile()) throw new ModelFileError(f, 'not a file (named in model.json weightsManifest)');
    size += stat.size;
  }
  const specs = json.weightsManifest!.flatMap((g) => g.weights);
  const expected = specs.reduce((s, w) => s + w.shape.reduce((a, b) => a * b, 1) * bytesPerElement(w), 0);
  if (size !== expected) {
    const [file, subject] = files.length === 1 ? [files[0], 'holds'] : [dir, `weight files (${files.length}) hold`];
    throw new ModelFileError(file, `${subject} ${size} bytes; model.json declares ${expected}`);
  }
}

/** metadata.json's own fields: types and shapes. */
function checkMetadataFields(file: string, m: ModelMetadata): void {
  const bad = (reason: string) => new ModelFileError(file, reason);
  if (typeof m !== 'object' || m === null) throw bad('not a JSON object');
  if (typeof m.id !== 'string' || !m.id) throw bad("'id' must be a non-empty string");
  if (!Array.isArray(m.labels) || !m.labels.length || !m.labels.every((l) => typeof l === 'string'))
    throw bad("'labels' must be a non-empty list of strings");
  const shape = m.inputShape as unknown;
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((d) => Number.isInteger(d) && d > 0))
    throw bad(`'inputShape' must be [height, width, channels], got ${JSON.stringify(shape)}`);
  if (shape[2] !== 1 && shape[2] !== 3) throw bad(`'inputShape' has ${shape[2]} channels; 1 or 3 are supported`);
  if (!Array.isArray(m.activationLayers)) throw bad("'activationLayers' must be a list of layer names");
}

/** metadata.json against model.json: the layers it names, the number of classes, the input shape. */
function checkMetadataAgainstModel(file: string, m: ModelMetadata, layers: readonly LayerJson[]): void {
  const bad = (reason: string) => new ModelFileError(file, reason);
  const shape = m.inputShape;
  const byName = new Map(layers.map((l) => [l.config?.name ?? l.name, l]));
  for (const [field, name] of [
    ['outputLayer', m.outputLayer],
    ['logitsLayer', m.logitsLayer],
    ...m.activationLayers.map((n) => ['activationLayers', n] as const),
  ] as const) {
    if (typeof name !== 'string' || !byName.has(name))
      throw bad(`'${field}' names layer '${String(name)}', which model.json does not have`);
  }
  const units = byName.get(m.logitsLayer)?.config?.units;
  if (units !== undefined && units !== m.labels.length)
    throw bad(`${m.labels.length} labels, but the model's '${m.logitsLayer}' layer has ${units} outputs`);
  const input = layers[0].config?.batch_input_shape;
  if (Array.isArray(input) && input.length === 4 && JSON.stringify(input.slice(1)) !== JSON.stringify(shape))
    throw bad(`'inputShape' ${JSON.stringify(shape)} differs from the model's input ${JSON.stringify(input.slice(1))}`);
}

/**
 * Checks a model directory before any worker loads it, so that a missing, corrupt or mismatched
 * file stops the start in milliseconds with the file and the reason (a ModelFileError), instead of
 * failing inside every worker: model.json (JSON, a tfjs layers model, a sane weights manifest), the
 * weight files (present, of the declared total size) and metadata.json (well-formed, consistent
 * with the model's layers, outputs and input). Returns the metadata and the model's SHA-256.
 */
export function checkModelFiles(dir: string): { metadata: ModelMetadata; sha256: string } {
  const modelFile = path.join(dir, 'model.json');
  const json = readJson<ModelJson & { format?: unknown }>(modelFile);
  const layers = checkModelJson(modelFile, json);
  checkWeightFiles(dir, json);
  const metadataFile = path.join(dir, 'metadata.json');
  const metadata = readJson<ModelMetadata>(metadataFile);
  checkMetadataFields(metadataFile, metadata);
  checkMetadataAgainstModel(metadataFile, metadata, layers);
  return { metadata, sha256: hashModelFiles(dir) };
}

/** metadata.json alone (the main thread needs labels and shapes, not weights). */
export function readMetadata(dir: string): ModelMetadata {
  return readJson<ModelMetadata>(path.join(dir, 'metadata.json'));
}

export async function loadModel(dir: string): Promise<StoredModel> {
  const modelFile = path.join(dir, 'model.json');
  const json = readJson<ModelJson>(modelFile);
  if (!json.modelTopology || !json.weightsManifest) {
    throw new ModelFileError(modelFile, 'not a tfjs layers model (modelTopology or weightsManifest missing)');
  }
  const hash = createHash('sha256');
  hash.update(fs.readFileSync(modelFile));
  const buffers: Buffer[] = [];
  for (const f of manifestFiles(dir, json)) {
    if (!fs.existsSync(f)) throw new ModelFileError(f, 'missing (named in model.json weightsManifest)');
    const b = fs.readFileSync(f);
    hash.update(b);
    buffers.push(b);
  }
  const weightSpecs = json.weightsManifest.flatMap((g) => g.weights);
  const all = Buffer.concat(buffers);
  const expected = weightSpecs.reduce((s, w) => s + w.shape.reduce((a, b) => a * b, 1) * bytesPerElement(w), 0);
  if (all.length !== expected) {
    throw new ModelFileError(
      path.join(dir, WEIGHTS_FILE),
      `holds ${all.length} bytes; model.json declares ${expected}`,
    );
  }
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.length) as ArrayBuffer;
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData }));
  } catch (err) {
    throw new ModelFileError(modelFile, `cannot be loaded: ${(err as Error).message}`);
  }
  const metadata = readMetadata(dir);
  for (const name of [metadata.outputLayer, metadata.logitsLayer, ...metadata.activationLayers]) {
    try {
      model.getLayer(name);
    } catch {
      throw new ModelFileError(
        path.join(dir, 'metadata.json'),
        `names layer '${name}', which model.json does not have`,
      );
    }
  }
  return { model, metadata, sha256: hash.digest('hex'), dir };
}
