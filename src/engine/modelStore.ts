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
