/**
 * The second, real model: the MobileNetV2 that `nsfwjs` 4.4.0 (MIT, npm) ships
 * inside its tarball — a Keras layers model, 224×224×3, five classes (Drawing, Hentai, Neutral,
 * Porn, Sexy), uint8-quantised weights — written out as a model directory the service loads
 * (models/nsfw-mobilenetv2/: model.json, the weight shard, metadata.json). Nothing here retrains or
 * alters it: the weight bytes are the package's own (test/models/nsfwMobileNetV2.test.ts checks
 * them against nsfwjs' loader), so megabytes of weights need not be committed. nsfwjs is installed
 * apart, in tools/nsfwjs/ with its own lockfile (`npm run models` and `npm test` install it): it
 * declares Node 22.13.0 exactly, and as a dev dependency of the project it made every `npm ci` on
 * Node 20 warn EBADENGINE.
 *
 * nsfwjs stores each file as a browserify module: `model.min.js` exports the model.json object,
 * each `group1-shardNofM.min.js` one base64 string of raw weight bytes (its core.js decodes them
 * with an IOHandler of its own). Its preprocessing is pixel / 255, which is ours; it stretches
 * other sizes to 224×224 bilinearly, where the service's policy fits them inside black bars.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { ModelMetadata } from '../engine/modelStore';

export const NSFW_MODEL_ID = 'nsfw-mobilenetv2';
export const NSFW_LABELS = ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'] as const;

/**
 * The layers the detectors read: three inverted-residual block outputs spread across depth
 * (56×56×24, 28×28×32, 14×14×96: pooled per channel to mean and std), the 1280-wide pooled
 * backbone features, the head's penultimate layer and the logits (split off the softmax Dense).
 */
export const NSFW_ACTIVATION_LAYERS = ['block_2_add', 'block_5_add', 'block_12_add', 'flatten_1', 'dense_2', 'dense_3'];

interface ShippedModelJson {
  readonly modelTopology: unknown;
  readonly weightsManifest: ReadonlyArray<{ paths: string[]; weights: unknown[] }>;
  readonly format?: string;
  readonly generatedBy?: string;
  readonly convertedBy?: string | null;
}

/** The nsfwjs package installed in tools/nsfwjs/ (its own lockfile), or a clear error. */
export function nsfwjsPackageDir(): string {
  const dir = path.resolve(__dirname, '..', '..', 'tools', 'nsfwjs', 'node_modules', 'nsfwjs');
  const pkg = path.join(dir, 'package.json');
  if (!fs.existsSync(pkg)) {
    throw new Error('nsfwjs is not installed: run `npm run models` (it installs tools/nsfwjs/ first)');
  }
  const version = (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { version: string }).version;
  if (version !== '4.4.0') throw new Error(`nsfwjs ${version} is installed in tools/nsfwjs; this extraction is for 4.4.0`);
  return dir;
}

/** Where the installed nsfwjs keeps MobileNetV2's modules. */
export function nsfwjsModelDir(): string {
  return path.join(nsfwjsPackageDir(), 'dist', 'models', 'mobilenet_v2');
}

/** Writes the model directory into `outDir`; returns what it wrote. */
export function extractNsfwMobileNetV2(outDir: string, source = nsfwjsModelDir()): { files: string[]; weightBytes: number } {
  const shipped = require(path.join(source, 'model.min.js')) as ShippedModelJson;
  fs.mkdirSync(outDir, { recursive: true });
  const files: string[] = [];
  let weightBytes = 0;
  const weightsManifest = shipped.weightsManifest.map((group) => ({
    weights: group.weights,
    paths: group.paths.map((p) => {
      const base64 = require(path.join(source, `${p}.min.js`)) as unknown;
      if (typeof base64 !== 'string') throw new Error(`nsfwjs ${p}.min.js does not export a base64 string`);
      const bytes = Buffer.from(base64, 'base64');
      const file = `${p}.bin`;
      fs.writeFileSync(path.join(outDir, file), bytes);
      files.push(file);
      weightBytes += bytes.length;
      return file;
    }),
  }));
  const modelJson = {
    format: 'layers-model',
    generatedBy: shipped.generatedBy,
    convertedBy: shipped.convertedBy ?? null,
    modelTopology: shipped.modelTopology,
    weightsManifest,
  };
  fs.writeFileSync(path.join(outDir, 'model.json'), JSON.stringify(modelJson));
  const sha256 = (f: string) => createHash('sha256').update(fs.readFileSync(path.join(outDir, f))).digest('hex');
  const metadata: ModelMetadata & Record<string, unknown> = {
    id: NSFW_MODEL_ID,
    labels: [...NSFW_LABELS],
    inputShape: [224, 224, 3],
    outputLayer: 'dense_3',
    logitsLayer: 'dense_3',
    activationLayers: NSFW_ACTIVATION_LAYERS,
    source: {
      package: 'nsfwjs@4.4.0',
      license: 'MIT',
      model: 'dist/models/mobilenet_v2 (Keras MobileNetV2, uint8-quantised weights)',
      preprocessing: 'pixel / 255 (the service decodes to [0, 1]); nsfwjs stretches to 224×224, the service fits inside black bars',
      files: Object.fromEntries(['model.json', ...files].map((f) => [f, sha256(f)])),
    },
  };
  fs.writeFileSync(path.join(outDir, 'metadata.json'), `${JSON.stringify(metadata, null, 2)}\n`);
  files.push('model.json', 'metadata.json');
  return { files, weightBytes };
}
