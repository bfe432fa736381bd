/**
 * Tiny models for the import tests, written as tensorflowjs_converter would: two layers models
 * (one ending in a softmax Dense, one in a Softmax layer after a linear Dense) and a graph model
 * whose GraphDef JSON is written here node by node (Placeholder → Conv2D/BiasAdd/Relu twice → a
 * residual AddV2 → Reshape → MatMul/BiasAdd → Softmax), with `graphReference` computing the same
 * function with tfjs ops, to check the imported model against.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as path from 'path';
import { saveModel } from '../../src/engine/modelStore';

/** Saves `model` to `dir` as a tfjs layers model (model.json, weights.bin), without metadata. */
export async function writeLayersModel(model: tf.LayersModel, dir: string): Promise<void> {
  await saveModel(model, dir, {} as never);
  fs.rmSync(path.join(dir, 'metadata.json'));
}

/** 8×8 RGB → conv 8×8 → conv 4×4 → flatten → Dense 'features' → Dense(3, softmax) 'probs'. */
export function denseSoftmaxModel(): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 3] });
  let x = tf.layers
    .conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv_a' })
    .apply(input) as tf.SymbolicTensor;
  x = tf.layers
    .conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'conv_b' })
    .apply(x) as tf.SymbolicTensor;
  x = tf.layers.flatten().apply(x) as tf.SymbolicTensor;
  x = tf.layers.dense({ units: 6, activation: 'relu', name: 'features' }).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, activation: 'softmax', name: 'probs' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

/** 6×6 grey → conv → flatten → Dense 'hidden' → Dropout → Dense(4) 'scores' → Softmax layer 'softmax'. */
export function softmaxLayerModel(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [6, 6, 1], filters: 2, kernelSize: 3, activation: 'relu', name: 'conv' }),
      tf.layers.flatten({ name: 'flat' }),
      tf.layers.dense({ units: 5, activation: 'relu', name: 'hidden' }),
      tf.layers.dropout({ rate: 0.5, name: 'drop' }),
      tf.layers.dense({ units: 4, name: 'scores' }),
      tf.layers.softmax({ name: 'softmax' }),
    ],
  });
}

/** A layers model whose last layer is a linear Dense: no softmax to find the logits by. */
export function logitsOnlyModel(inputShape: Array<number | null> = [5, 5, 3]): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape, filters: 2, kernelSize: 3, activation: 'relu', name: 'conv' }),
      tf.layers.globalAveragePooling2d({ name: 'pool' }),
      tf.layers.dense({ units: 3, name: 'logits' }),
    ],
  });
}

/** Input [10]: not an image. */
export function vectorModel(): tf.LayersModel {
  return tf.sequential({ layers: [tf.layers.dense({ inputShape: [10], units: 3, activation: 'softmax' })] });
}

// --- The graph model -------------------------------------------------------------------------

const b64 = (s: string) => Buffer.from(s).toString('base64');
const float = { type: 'DT_FLOAT' };

interface GraphWeights {
  readonly [name: string]: { readonly shape: number[]; readonly dtype: 'float32' | 'int32'; readonly values: number[] };
}

/** Deterministic weights, small enough that nothing saturates. */
function values(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed * 78.233) * 0.3);
}

export const GRAPH_WEIGHTS: GraphWeights = {
  'conv1/w': { shape: [3, 3, 3, 4], dtype: 'float32', values: values(108, 1) },
  'conv1/b': { shape: [4], dtype: 'float32', values: values(4, 2) },
  'conv2/w': { shape: [3, 3, 4, 4], dtype: 'float32', values: values(144, 3) },
  'conv2/b': { shape: [4], dtype: 'float32', values: values(4, 4) },
  'conv3/w': { shape: [1, 1, 4, 4], dtype: 'float32', values: values(16, 5) },
  'conv3/b': { shape: [4], dtype: 'float32', values: values(4, 6) },
  'flatten/shape': { shape: [2], dtype: 'int32', values: [-1, 64] },
  'dense/w': { shape: [64, 3], dtype: 'float32', values: values(192, 7) },
  'dense/b': { shape: [3], dtype: 'float32', values: values(3, 8) },
};

const constNode = (name: string) => ({
  name,
  op: 'Const',
  attr: {
    value: {
      tensor: {
        dtype: GRAPH_WEIGHTS[name].dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT',
        tensorShape: { dim: GRAPH_WEIGHTS[name].shape.map((s) => ({ size: String(s) })) },
      },
    },
    dtype: { type: GRAPH_WEIGHTS[name].dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT' },
  },
});

const conv = (name: string, input: string, stride: number) => [
  {
    name: `${name}/Conv2D`,
    op: 'Conv2D',
    input: [input, `${name}/w`],
    attr: {
      T: float,
      strides: { list: { i: ['1', String(stride), String(stride), '1'] } },
      padding: { s: b64('SAME') },
      data_format: { s: b64('NHWC') },
      dilations: { list: { i: ['1', '1', '1', '1'] } },
    },
  },
  {
    name: `${name}/BiasAdd`,
    op: 'BiasAdd',
    input: [`${name}/Conv2D`, `${name}/b`],
    attr: { T: float, data_format: { s: b64('NHWC') } },
  },
  { name: `${name}/Relu`, op: 'Relu', input: [`${name}/BiasAdd`], attr: { T: float } },
];

/** The GraphDef nodes; `extra` are appended (the unsupported-ops test adds some). */
export function graphNodes(inputShape: number[] = [-1, 8, 8, 3], extra: object[] = []): object[] {
  return [
    {
      name: 'input',
      op: 'Placeholder',
      attr: { dtype: float, shape: { shape: { dim: inputShape.map((s) => ({ size: String(s) })) } } },
    },
    ...Object.keys(GRAPH_WEIGHTS).map(constNode),
    ...conv('conv1', 'input', 1),
    ...conv('conv2', 'conv1/Relu', 2),
    ...conv('conv3', 'conv2/Relu', 1),
    { name: 'block/add', op: 'AddV2', input: ['conv2/Relu', 'conv3/Relu'], attr: { T: float } },
    {
      name: 'flatten',
      op: 'Reshape',
      input: ['block/add', 'flatten/shape'],
      attr: { T: float, Tshape: { type: 'DT_INT32' } },
    },
    {
      name: 'dense/MatMul',
      op: 'MatMul',
      input: ['flatten', 'dense/w'],
      attr: { T: float, transpose_a: { b: false }, transpose_b: { b: false } },
    },
    {
      name: 'logits',
      op: 'BiasAdd',
      input: ['dense/MatMul', 'dense/b'],
      attr: { T: float, data_format: { s: b64('NHWC') } },
    },
    { name: 'probs', op: 'Softmax', input: ['logits'], attr: { T: float } },
    { name: 'Identity', op: 'Identity', input: ['probs'], attr: { T: float } },
    ...extra,
  ];
}

/** Writes model.json (format graph-model) and weights.bin to `dir`. */
export function writeGraphModel(dir: string, nodes: object[] = graphNodes()): void {
  fs.mkdirSync(dir, { recursive: true });
  const names = Object.keys(GRAPH_WEIGHTS);
  const data = Buffer.concat(
    names.map((n) => {
      const w = GRAPH_WEIGHTS[n];
      const typed = w.dtype === 'int32' ? Int32Array.from(w.values) : Float32Array.from(w.values);
      return Buffer.from(typed.buffer);
    }),
  );
  fs.writeFileSync(path.join(dir, 'weights.bin'), data);
  const modelJson = {
    format: 'graph-model',
    generatedBy: 'test/helpers/importModels.ts',
    convertedBy: 'hand',
    modelTopology: { node: nodes, library: {}, versions: { producer: 1 } },
    weightsManifest: [
      {
        paths: ['weights.bin'],
        weights: names.map((n) => ({ name: n, shape: GRAPH_WEIGHTS[n].shape, dtype: GRAPH_WEIGHTS[n].dtype })),
      },
    ],
  };
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(modelJson));
}

/** The graph model's logits, with tfjs ops on the same weights: [N, 8, 8, 3] → [N, 3]. */
export function graphReference(x: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => {
    const w = (n: string) => tf.tensor(GRAPH_WEIGHTS[n].values, GRAPH_WEIGHTS[n].shape);
    const convRelu = (t: tf.Tensor4D, n: string, s: number) =>
      tf.relu(tf.add(tf.conv2d(t, w(`${n}/w`) as tf.Tensor4D, s, 'same'), w(`${n}/b`))) as tf.Tensor4D;
    const c2 = convRelu(convRelu(x, 'conv1', 1), 'conv2', 2);
    const added = tf.add(c2, convRelu(c2, 'conv3', 1));
    return tf.add(tf.matMul(tf.reshape(added, [-1, 64]), w('dense/w') as tf.Tensor2D), w('dense/b')) as tf.Tensor2D;
  });
}
