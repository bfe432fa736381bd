/**
 * `advsieve import` (src/models/import.ts) on tiny models made in the test: layers models ending in
 * a softmax Dense and in a Softmax layer, a hand-written graph model; the metadata it writes (the
 * logits, the activation-layer rule, the input shape, the SHA-256), the imported model running and
 * differentiating through InferenceModel with its preprocessing inside, and each refusal.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend } from '../../src/engine/backends';
import { InferenceModel } from '../../src/engine/model';
import { checkModelFiles, hashModelFiles } from '../../src/engine/modelStore';
import { PREPROCESSING_PRESETS } from '../../src/engine/preprocessing';
import { importModel, ImportOptions, parseBytes } from '../../src/models/import';
import { ModelImportError } from '../../src/models/importError';
import {
  denseSoftmaxModel,
  graphNodes,
  graphReference,
  logitsOnlyModel,
  softmaxLayerModel,
  vectorModel,
  writeGraphModel,
  writeLayersModel,
} from '../helpers/importModels';

let root: string;
let models: string;
let n = 0;

beforeAll(async () => {
  await initBackend('wasm');
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-import-'));
  models = path.join(root, 'models');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** A fresh source folder. */
function source(): string {
  return path.join(root, `src-${n++}`);
}

async function layersSource(model: tf.LayersModel): Promise<string> {
  const dir = source();
  await writeLayersModel(model, dir);
  model.dispose();
  return dir;
}

function graphSource(nodes?: object[]): string {
  const dir = source();
  writeGraphModel(dir, nodes);
  return dir;
}

function options(sourceDir: string, extra: Partial<ImportOptions> = {}): ImportOptions {
  return { sourceDir, id: `m${n++}`, modelsDir: models, maxMemoryBytes: 2 ** 30, ...extra };
}

async function refusal(o: ImportOptions): Promise<ModelImportError> {
  const err = await importModel(o).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelImportError);
  expect(fs.existsSync(path.join(o.modelsDir, o.id))).toBe(false);
  return err as ModelImportError;
}

const pixels = (count: number, [h, w, c]: readonly number[]) =>
  new Float32Array(count * h * w * c).map((_, i) => ((i * 7919) % 255) / 255);

test('a layers model ending in a softmax Dense: logits split off it, conv stages, penultimate features, sha256; it runs', async () => {
  const dir = await layersSource(denseSoftmaxModel());
  const labels = path.join(root, 'labels.txt');
  fs.writeFileSync(labels, 'cat\ndog\n\nbird\n');
  const result = await importModel(options(dir, { id: 'dense-softmax', labelsFile: labels }));
  expect(result.format).toBe('layers-model');
  expect(result.metadata).toMatchObject({
    id: 'dense-softmax',
    labels: ['cat', 'dog', 'bird'],
    inputShape: [8, 8, 3],
    outputLayer: 'probs',
    logitsLayer: 'probs',
    // conv_a at 8×8, conv_b at 4×4 (two resolutions: both), the Dense before the logits, the logits.
    activationLayers: ['conv_a', 'conv_b', 'features', 'probs'],
  });
  expect(result.sha256).toBe(hashModelFiles(result.dir));
  expect(checkModelFiles(result.dir).sha256).toBe(result.sha256);
  expect(JSON.parse(fs.readFileSync(path.join(result.dir, 'metadata.json'), 'utf8')).sha256).toBe(result.sha256);

  const model = await InferenceModel.load(result.dir);
  const out = await model.runBatch(pixels(2, [8, 8, 3]), 2);
  const soft = tf.tidy(() => tf.softmax(tf.tensor2d(out.logits, [2, 3])).dataSync());
  soft.forEach((p, i) => expect(out.probs[i]).toBeCloseTo(p, 5));
  expect(Object.fromEntries(Object.entries(out.activations).map(([k, v]) => [k, v.width]))).toEqual({
    conv_a: 8,
    conv_b: 8,
    features: 6,
    probs: 3,
  });
  model.dispose();
});

test('a layers model with a separate Softmax layer: the logits are the layer before it; dropout is looked through', async () => {
  const dir = await layersSource(softmaxLayerModel());
  const result = await importModel(options(dir));
  expect(result.metadata).toMatchObject({
    labels: ['class_0', 'class_1', 'class_2', 'class_3'],
    inputShape: [6, 6, 1],
    outputLayer: 'softmax',
    logitsLayer: 'scores',
    activationLayers: ['conv', 'hidden', 'scores'],
  });
  const model = await InferenceModel.load(result.dir);
  const out = await model.runBatch(pixels(3, [6, 6, 1]), 3);
  expect(out.probs).toHaveLength(12);
  for (let i = 0; i < 3; i++) expect(out.probs.subarray(i * 4, i * 4 + 4).reduce((a, b) => a + b)).toBeCloseTo(1, 5);
  model.dispose();
});

test('preprocessing runs inside the forward pass: the minus-one-one import equals the network on 2x − 1', async () => {
  const net = denseSoftmaxModel();
  const dir = source();
  await writeLayersModel(net, dir);
  const result = await importModel(options(dir, { preprocessing: PREPROCESSING_PRESETS['minus-one-one'] }));
  expect(result.metadata.preprocessing).toEqual({ scale: 2, offset: -1 });
  const model = await InferenceModel.load(result.dir);
  const px = pixels(2, [8, 8, 3]);
  const out = await model.runBatch(px, 2);
  const direct = tf.tidy(() => (net.predict(tf.tensor4d(px, [2, 8, 8, 3]).mul(2).sub(1)) as tf.Tensor).dataSync());
  direct.forEach((p, i) => expect(out.probs[i]).toBeCloseTo(p, 5));
  model.dispose();
  net.dispose();
});

test('a graph model: logits from the Softmax node, the rule on its nodes; forward and input gradient equal the same function in tfjs ops', async () => {
  const dir = graphSource();
  const result = await importModel(options(dir, { id: 'graph', preprocessing: PREPROCESSING_PRESETS['minus-one-one'] }));
  expect(result.format).toBe('graph-model');
  expect(result.metadata).toMatchObject({
    inputShape: [8, 8, 3],
    outputLayer: 'probs',
    logitsLayer: 'logits',
    // The residual AddV2 is the only block kind kept (a model with additions: additions only);
    // then the MatMul's input (the penultimate features) and the logits.
    activationLayers: ['block/add', 'flatten', 'logits'],
  });
  expect(checkModelFiles(result.dir).sha256).toBe(result.sha256);

  const model = await InferenceModel.load(result.dir);
  const px = pixels(2, [8, 8, 3]);
  const out = await model.runBatch(px, 2);
  const x = tf.tensor4d(px, [2, 8, 8, 3]);
  const pre = (t: tf.Tensor4D) => tf.sub(tf.mul(t, 2), 1) as tf.Tensor4D;
  const expected = tf.tidy(() => graphReference(pre(x)).dataSync());
  expected.forEach((v, i) => expect(out.logits[i]).toBeCloseTo(v, 4));
  expect(out.activations.flatten.width).toBe(64);
  expect(out.activations['block/add'].width).toBe(8);

  const labels = Int32Array.of(0, 2);
  const g = model.inputGradient(x, labels);
  const want = tf.tidy(() => {
    const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), 3);
    return tf.grad((t) => tf.losses.softmaxCrossEntropy(onehot, graphReference(pre(t as tf.Tensor4D))))(x).dataSync();
  });
  const got = g.dataSync();
  expect(got.some((v) => v !== 0)).toBe(true);
  want.forEach((v, i) => expect(got[i]).toBeCloseTo(v, 4));
  // The detectors' activations are differentiable too (adaptive attacks).
  const viaActivations = tf.tidy(() =>
    tf.grad((t) => tf.sum(model.forwardDifferentiable(t as tf.Tensor4D).activations['block/add']))(x).abs().sum().dataSync()[0],
  );
  expect(viaActivations).toBeGreaterThan(0);
  const before = tf.memory().numTensors;
  tf.dispose(model.inputGradient(x, labels));
  tf.dispose(Object.values(model.forward(x)).flatMap((t) => (t instanceof tf.Tensor ? [t] : Object.values(t))));
  expect(tf.memory().numTensors).toBe(before);
  tf.dispose([x, g]);
  model.dispose();
});

test('--logits for a model without a softmax: no outputLayer, the probabilities are the logits’ softmax', async () => {
  const dir = await layersSource(logitsOnlyModel());
  expect((await refusal(options(dir))).code).toBe('MODEL_NO_LOGITS');
  const result = await importModel(options(dir, { logits: 'logits' }));
  expect(result.metadata.outputLayer).toBeUndefined();
  expect(result.metadata.activationLayers).toEqual(['conv', 'pool', 'logits']);
  const model = await InferenceModel.load(result.dir);
  const out = await model.runBatch(pixels(1, [5, 5, 3]), 1);
  const soft = tf.tidy(() => tf.softmax(tf.tensor1d(out.logits)).dataSync());
  soft.forEach((p, i) => expect(out.probs[i]).toBeCloseTo(p, 5));
  model.dispose();
});

test('an input of unknown size needs --input-size', async () => {
  const dir = await layersSource(logitsOnlyModel([null, null, 3]));
  const err = await refusal(options(dir, { logits: 'logits' }));
  expect(err.code).toBe('MODEL_NOT_IMAGE_INPUT');
  expect(err.message).toMatch(/input size is not fixed .* give --input-size HxW/);
  const result = await importModel(options(dir, { logits: 'logits', inputSize: [12, 10] }));
  expect(result.metadata.inputShape).toEqual([12, 10, 3]);
});

describe('refusals name the file and carry a code', () => {
  test('a weight file missing', async () => {
    const dir = graphSource();
    fs.rmSync(path.join(dir, 'weights.bin'));
    const err = await refusal(options(dir));
    expect(err.code).toBe('MODEL_WEIGHTS_MISSING');
    expect(err.message).toBe(`${path.join(dir, 'weights.bin')}: missing (named in model.json weightsManifest)`);
  });

  test('ops the backend lacks, every one listed', async () => {
    const extra = [
      { name: 'mix', op: 'Einsum', input: ['flatten', 'dense/w'], attr: { equation: { s: Buffer.from('ij,jk->ik').toString('base64') }, N: { i: '2' }, T: { type: 'DT_FLOAT' } } },
      { name: 'odd1', op: 'MadeUpOp', input: ['mix'] },
      { name: 'odd2', op: 'MadeUpOp', input: ['odd1'] },
    ];
    const dir = graphSource(graphNodes(undefined, extra));
    const err = await refusal(options(dir));
    expect(err.code).toBe('MODEL_UNSUPPORTED_OPS');
    expect(err.message).toMatch(new RegExp(`^${path.join(dir, 'model.json')}: the wasm backend cannot run these ops: `));
    expect(err.message).toMatch(/Einsum \(kernel Einsum; node mix\)/);
    expect(err.message).toMatch(/MadeUpOp \(unknown to this check, and no kernel of that name; node odd1, odd2\)/);
  });

  test('a non-image input: a vector, or a graph placeholder [-1, 10]', async () => {
    const err = await refusal(options(await layersSource(vectorModel())));
    expect(err.code).toBe('MODEL_NOT_IMAGE_INPUT');
    expect(err.message).toMatch(/model\.json: not an image model: its input is \[null,10\]/);
    const graph = await refusal(options(graphSource(graphNodes([-1, 10]))));
    expect(graph.code).toBe('MODEL_NOT_IMAGE_INPUT');
  });

  test('too large for --max-memory', async () => {
    const dir = graphSource();
    const err = await refusal(options(dir, { maxMemoryBytes: parseBytes('1K') }));
    expect(err.code).toBe('MODEL_TOO_LARGE');
    // 477 weights (the reshape target included), 4 bytes each once loaded, × 4.
    expect(err.message).toMatch(/model\.json: needs about 7632 bytes \(1908 bytes of float32 weights × 4\); the limit is 1024/);
  });

  test('no softmax and no --logits', async () => {
    const nodes = graphNodes().filter((node) => !['probs', 'Identity'].includes((node as { name: string }).name));
    const err = await refusal(options(graphSource(nodes)));
    expect(err.code).toBe('MODEL_NO_LOGITS');
    expect(err.message).toMatch(/model\.json: no logits found: it does not end in a softmax; name .* with --logits/);
  });

  test('labels that do not match the classes, and an existing model directory', async () => {
    const dir = graphSource();
    const labels = path.join(root, 'two.json');
    fs.writeFileSync(labels, '["a", "b"]');
    const err = await refusal(options(dir, { labelsFile: labels }));
    expect(err.code).toBe('MODEL_METADATA');
    expect(err.message).toBe(`${labels}: 2 labels, but the model has 3 classes`);
    await importModel(options(dir, { id: 'taken' }));
    const again = await importModel(options(dir, { id: 'taken' })).catch((e: ModelImportError) => e);
    expect((again as ModelImportError).code).toBe('MODEL_EXISTS');
  });

  test('a metadata.json whose preprocessing does not fit the input stops the service at start', async () => {
    const result = await importModel(options(graphSource()));
    const file = path.join(result.dir, 'metadata.json');
    const metadata = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.writeFileSync(file, JSON.stringify({ ...metadata, preprocessing: { mean: [0.5, 0.5] } }));
    expect(() => checkModelFiles(result.dir)).toThrow(
      `${file}: 'preprocessing' 'mean' must be 1 or 3 finite numbers, got [0.5,0.5]`,
    );
  });
});
