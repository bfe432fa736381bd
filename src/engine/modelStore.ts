/**
 * Model files on disk, without tfjs-node: `models/<id>/model.json` (a tfjs layers model, or a tfjs
 * graph model as `advsieve import` brings it), its weight files, and `metadata.json` (labels, input
 * shape, preprocessing, the layers — graph nodes for a graph model — whose activations the detectors
 * read). A file-system IO handler reads and writes them; the SHA-256 of model.json and the weights
 * identifies the model (calibrations name the model they belong to by it).
 */
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { registerCustomLayers } from './layers/customLayers';
import { GraphNodeJson, graphInputs, graphNodes, placeholderShape } from './graphTopology';
import { Preprocessing, preprocessingProblem } from './preprocessing';

export interface ModelMetadata {
  readonly id: string;
  readonly labels: readonly string[];
  /** [height, width, channels] of one input image, pixel values in [0, 1]. */
  readonly inputShape: readonly [number, number, number];
  /**
   * Layer giving class probabilities (see `probabilities`). Absent: the model ends in its logits,
   * and the probabilities are computed from them. In a graph model, this and the two below name graph nodes.
   */
  readonly outputLayer?: string;
  /** Layer giving the pre-softmax scores, for attacks and promotion/suppression analysis. */
  readonly logitsLayer: string;
  /** Layers whose activations the detectors use, input side first. */
  readonly activationLayers: readonly string[];
  /**
   * How the class probabilities follow from the logits: 'softmax' (absent: one distribution over
   * the classes, summing to 1) or 'sigmoid' (one independent probability per class, as a
   * one-vs-rest model is trained: they need not sum to 1, and all may be low).
   */
  readonly probabilities?: ProbabilityKind;
  /** What `advsieve train` built (src/train/modelVariant.ts); absent for the default CNN and imported models. */
  readonly variant?: ModelVariantRecord;
  /** How pixels in [0, 1] become the network's input (src/engine/preprocessing.ts); absent: as they are. */
  readonly preprocessing?: Preprocessing;
  readonly training?: Record<string, unknown>;
}

export type ProbabilityKind = 'softmax' | 'sigmoid';
export const PROBABILITY_KINDS: readonly ProbabilityKind[] = ['softmax', 'sigmoid'];

/** A trained variant as metadata.json records it (docs/variants.md). */
export interface ModelVariantRecord {
  readonly arch: string;
  readonly l2norm: string;
  readonly l2Scale?: number;
  readonly head: string;
  readonly loss: string;
  /** With head 'pnn': p(none | x) = sigmoid(logBackground − (logsumexp(logits) − log K)). */
  readonly pnn?: {
    readonly prototypesPerClass: number;
    readonly sigma: number;
    readonly logBackground: number;
    /** Share of the training images whose p(none) is at least 0.5 (how logBackground was set). */
    readonly backgroundQuantile: number;
  };
}

export interface StoredModel {
  readonly model: tf.LayersModel | tf.GraphModel;
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

export interface ModelJson {
  format?: unknown;
  modelTopology?: object;
  weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

export function manifestFiles(dir: string, json: ModelJson): string[] {
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

export function bytesPerElement(w: tf.io.WeightsManifestEntry): number {
  const stored = w.quantization?.dtype ?? w.dtype;
  return stored === 'uint8' || stored === 'bool' ? 1 : stored === 'uint16' || stored === 'float16' ? 2 : 4;
}

export interface LayerJson {
  readonly class_name?: string;
  readonly name?: string;
  readonly config?: { name?: string; units?: number; batch_input_shape?: Array<number | null> };
}

/** The layers of a Sequential or functional topology (Keras' `model_config` wrapper or not). */
export function topologyLayers(topology: object): LayerJson[] | undefined {
  const t = topology as { model_config?: object; config?: unknown };
  const config = (t.model_config as { config?: unknown } | undefined)?.config ?? t.config;
  const layers = Array.isArray(config) ? config : (config as { layers?: unknown } | undefined)?.layers;
  return Array.isArray(layers) ? (layers as LayerJson[]) : undefined;
}

/** What model.json holds: a layers model's layers, or a graph model's nodes. */
export type ModelTopology =
  | { readonly format: 'layers-model'; readonly layers: LayerJson[] }
  | { readonly format: 'graph-model'; readonly nodes: GraphNodeJson[] };

/** model.json's shape: a tfjs layers or graph model with a sane weights manifest. */
export function checkModelJson(file: string, json: ModelJson): ModelTopology {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new ModelFileError(file, 'not a tfjs layers model (not a JSON object)');
  if (json.format !== undefined && json.format !== 'layers-model' && json.format !== 'graph-model')
    throw new ModelFileError(file, `not a tfjs layers or graph model (format '${String(json.format)}')`);
  const kind = json.format === 'graph-model' ? 'graph' : 'layers';
  if (typeof json.modelTopology !== 'object' || json.modelTopology === null || !Array.isArray(json.weightsManifest))
    throw new ModelFileError(file, `not a tfjs ${kind} model (modelTopology or weightsManifest missing)`);
  const groupsOk = json.weightsManifest.every(
    (g) =>
      Array.isArray(g?.paths) &&
      g.paths.every((p) => typeof p === 'string') &&
      Array.isArray(g.weights) &&
      g.weights.every((w) => Array.isArray(w?.shape) && typeof w.dtype === 'string'),
  );
  if (!groupsOk) throw new ModelFileError(file, 'weightsManifest is malformed (groups of paths and weights expected)');
  if (kind === 'graph') {
    const nodes = graphNodes(json.modelTopology);
    if (!nodes?.length) throw new ModelFileError(file, 'not a tfjs graph model (modelTopology has no `node` list)');
    return { format: 'graph-model', nodes };
  }
  const layers = topologyLayers(json.modelTopology);
  if (!layers?.length) throw new ModelFileError(file, 'not a tfjs layers model (modelTopology has no layers)');
  return { format: 'layers-model', layers };
}

export function checkWeightFiles(dir: string, json: ModelJson): void {
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
  if (m.probabilities !== undefined && !PROBABILITY_KINDS.includes(m.probabilities))
    throw bad(`'probabilities' must be one of ${PROBABILITY_KINDS.join(', ')}, got ${JSON.stringify(m.probabilities)}`);
  if (m.preprocessing !== undefined) {
    const problem = preprocessingProblem(m.preprocessing, shape[2] as number);
    if (problem) throw bad(`'preprocessing' ${problem}`);
  }
}

/** Whether a model input's [height, width, channels] (null: any size) admits `shape`. */
function inputAdmits(input: ReadonlyArray<number | null>, shape: readonly number[]): boolean {
  return input.length === 3 && input.every((d, i) => d === null || d === shape[i]);
}

/** The names metadata.json gives layers (graph nodes) by, with the field that gives each. */
function namedInMetadata(m: ModelMetadata): Array<readonly [string, unknown]> {
  return [
    ...(m.outputLayer === undefined ? [] : [['outputLayer', m.outputLayer] as const]),
    ['logitsLayer', m.logitsLayer],
    ...m.activationLayers.map((n) => ['activationLayers', n] as const),
  ];
}

/** metadata.json against model.json: the layers it names, the number of classes, the input shape. */
function checkMetadataAgainstModel(file: string, m: ModelMetadata, topology: ModelTopology): void {
  const bad = (reason: string) => new ModelFileError(file, reason);
  const shape = m.inputShape;
  if (topology.format === 'graph-model') {
    const names = new Set(topology.nodes.map((n) => n.name));
    for (const [field, name] of namedInMetadata(m)) {
      if (typeof name !== 'string' || !names.has(name))
        throw bad(`'${field}' names node '${String(name)}', which model.json's graph does not have`);
    }
    const input = graphInputs(topology.nodes).map(placeholderShape)[0];
    if (input?.length === 4 && !inputAdmits(input.slice(1), shape))
      throw bad(
        `'inputShape' ${JSON.stringify(shape)} differs from the model's input ${JSON.stringify(input.slice(1))}`,
      );
    return;
  }
  const layers = topology.layers;
  const byName = new Map(layers.map((l) => [l.config?.name ?? l.name, l]));
  for (const [field, name] of namedInMetadata(m)) {
    if (typeof name !== 'string' || !byName.has(name))
      throw bad(`'${field}' names layer '${String(name)}', which model.json does not have`);
  }
  const units = byName.get(m.logitsLayer)?.config?.units;
  if (units !== undefined && units !== m.labels.length)
    throw bad(`${m.labels.length} labels, but the model's '${m.logitsLayer}' layer has ${units} outputs`);
  const input = layers[0].config?.batch_input_shape;
  if (Array.isArray(input) && input.length === 4 && !inputAdmits(input.slice(1), shape))
    throw bad(`'inputShape' ${JSON.stringify(shape)} differs from the model's input ${JSON.stringify(input.slice(1))}`);
}

/**
 * Checks a model directory before any worker loads it, so that a missing, corrupt or mismatched
 * file stops the start in milliseconds with the file and the reason (a ModelFileError), instead of
 * failing inside every worker: model.json (JSON, a tfjs layers or graph model, a sane weights manifest), the
 * weight files (present, of the declared total size) and metadata.json (well-formed, consistent
 * with the model's layers, outputs and input). Returns the metadata and the model's SHA-256.
 */
export function checkModelFiles(dir: string): { metadata: ModelMetadata; sha256: string } {
  const modelFile = path.join(dir, 'model.json');
  const json = readJson<ModelJson>(modelFile);
  const topology = checkModelJson(modelFile, json);
  checkWeightFiles(dir, json);
  const metadataFile = path.join(dir, 'metadata.json');
  const metadata = readJson<ModelMetadata>(metadataFile);
  checkMetadataFields(metadataFile, metadata);
  checkMetadataAgainstModel(metadataFile, metadata, topology);
  return { metadata, sha256: hashModelFiles(dir) };
}

/** metadata.json alone (the main thread needs labels and shapes, not weights). */
export function readMetadata(dir: string): ModelMetadata {
  return readJson<ModelMetadata>(path.join(dir, 'metadata.json'));
}

/** model.json and its weights, loaded (a layers or a graph model), with their SHA-256; no metadata. */
export async function loadModelFiles(
  dir: string,
): Promise<{ model: tf.LayersModel | tf.GraphModel; json: ModelJson; sha256: string }> {
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
  const artifacts = tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData });
  registerCustomLayers(); // model.json may name them (src/engine/layers/customLayers.ts)
  try {
    const model =
      json.format === 'graph-model' ? await tf.loadGraphModel(artifacts) : await tf.loadLayersModel(artifacts);
    return { model, json, sha256: hash.digest('hex') };
  } catch (err) {
    throw new ModelFileError(modelFile, `cannot be loaded: ${(err as Error).message}`);
  }
}

export async function loadModel(dir: string): Promise<StoredModel> {
  const { model, json, sha256 } = await loadModelFiles(dir);
  const graph = model instanceof tf.GraphModel;
  const metadata = readMetadata(dir);
  const nodes = new Set(graphNodes(json.modelTopology)?.map((n) => n.name));
  const has = (name: string) => {
    if (graph) return nodes.has(name);
    try {
      return (model as tf.LayersModel).getLayer(name) !== undefined;
    } catch {
      return false;
    }
  };
  for (const [, name] of namedInMetadata(metadata)) {
    if (!has(name as string)) {
      throw new ModelFileError(
        path.join(dir, 'metadata.json'),
        `names ${graph ? 'node' : 'layer'} '${String(name)}', which model.json does not have`,
      );
    }
  }
  return { model, metadata, sha256, dir };
}
