/**
 * A tfjs layers model as a Network: one functional model whose outputs are the distinct layers
 * among [probabilities, logits, ...activation layers], and one from the input to the logits only.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelMetadata } from './modelStore';
import { Network, NetworkSplit, outputList } from './network';

/**
 * The logits: the named layer's output — or, when that layer is a Dense with a softmax inside (how
 * Keras classifiers usually end: `Dense(n, activation='softmax')`), the same Dense without its
 * activation, with the same weights, on the same input: the scores before the softmax, which the
 * attacks and the promotion/suppression analysis need and the layer itself never outputs.
 */
function logitsOutput(m: tf.LayersModel, name: string): tf.SymbolicTensor {
  const layer = m.getLayer(name);
  const config = layer.getConfig();
  if (config.activation !== 'softmax') return layer.output as tf.SymbolicTensor;
  if (layer.getClassName() !== 'Dense') {
    throw new Error(
      `logits layer '${name}' is a ${layer.getClassName()} with a softmax inside: only a Dense's logits can be split off; name the layer before the softmax`,
    );
  }
  const twin = tf.layers.dense({
    units: config.units as number,
    useBias: config.useBias as boolean,
    activation: 'linear',
    name: unusedName(m, `${name}_logits`),
    weights: layer.getWeights(),
  });
  return twin.apply(layer.input as tf.SymbolicTensor) as tf.SymbolicTensor;
}

function unusedName(m: tf.LayersModel, base: string): string {
  const taken = new Set(m.layers.map((l) => l.name));
  let name = base;
  for (let k = 2; taken.has(name); k++) name = `${base}_${k}`;
  return name;
}

interface LayerNode {
  readonly inputTensors: tf.SymbolicTensor[];
  readonly outputTensors: tf.SymbolicTensor[];
}

/**
 * `model` cut at `name`: a model from the input to that layer's output, and one from a new input
 * of that shape on to the model's output, made by calling every later layer again, in the model's
 * (topological) order, on what the cut leads to. A later layer that also reads a tensor from
 * before the cut has no such replay: refused, naming both layers.
 */
function splitLayers(model: tf.LayersModel, name: string): NetworkSplit {
  const cutLayer = model.getLayer(name);
  const cut = cutLayer.output as tf.SymbolicTensor;
  const head = tf.model({ inputs: model.inputs, outputs: cut });
  const input = tf.input({ shape: cut.shape.slice(1) as number[] });
  const replayed = new Map<number, tf.SymbolicTensor>([[cut.id, input]]);
  const after = model.layers.slice(model.layers.indexOf(cutLayer) + 1);
  for (const layer of after) {
    const node = (layer as unknown as { inboundNodes: LayerNode[] }).inboundNodes[0];
    const ins = node.inputTensors.map((t) => replayed.get(t.id));
    if (!ins.length || ins.every((t) => t === undefined)) continue; // upstream of the cut, or beside it
    const missing = node.inputTensors.find((t) => !replayed.has(t.id));
    if (missing)
      throw new Error(
        `layer '${layer.name}' reads '${missing.sourceLayer.name}' as well as what follows '${name}': cut at a later layer`,
      );
    const out = outputList(layer.apply(ins.length === 1 ? ins[0]! : (ins as tf.SymbolicTensor[])) as never);
    node.outputTensors.forEach((t, i) => replayed.set(t.id, out[i] as unknown as tf.SymbolicTensor));
  }
  const end = replayed.get((model.outputs[0] as tf.SymbolicTensor).id);
  if (!end) throw new Error(`the model's output does not depend on layer '${name}'`);
  const tail = tf.model({ inputs: input, outputs: end });
  return { head: (x) => head.apply(x) as tf.Tensor, tail: (a) => tail.apply(a) as tf.Tensor2D };
}

export function layersNetwork(m: tf.LayersModel, md: ModelMetadata, activationLayers: readonly string[]): Network {
  const logits = logitsOutput(m, md.logitsLayer);
  // A Keras-style model's softmax Dense is both outputLayer and logitsLayer: its probabilities get a key of their own.
  const probsKey =
    md.outputLayer === undefined
      ? undefined
      : md.outputLayer === md.logitsLayer
        ? `${md.outputLayer}\u0000probabilities`
        : md.outputLayer;
  const outputs = new Map<string, tf.SymbolicTensor>();
  if (probsKey !== undefined) outputs.set(probsKey, m.getLayer(md.outputLayer!).output as tf.SymbolicTensor);
  for (const name of [md.logitsLayer, ...activationLayers]) {
    if (!outputs.has(name))
      outputs.set(name, name === md.logitsLayer ? logits : (m.getLayer(name).output as tf.SymbolicTensor));
  }
  /** Index in the graph's outputs of each layer name (the probabilities' under probsKey). */
  const outputIndex = new Map([...outputs.keys()].map((n, i) => [n, i]));
  const graph = tf.model({ inputs: m.inputs, outputs: [...outputs.values()] });
  /** Input → logits only: attacks differentiate this one. */
  const logitsGraph = tf.model({ inputs: m.inputs, outputs: logits });
  const splits = new Map<string, NetworkSplit>();
  return {
    run(x, differentiable) {
      const outs = outputList((differentiable ? graph.apply(x) : graph.predict(x)) as tf.Tensor | tf.Tensor[]);
      const get = (name: string) => outs[outputIndex.get(name)!];
      return {
        probs: probsKey === undefined ? undefined : (get(probsKey) as tf.Tensor2D),
        logits: get(md.logitsLayer) as tf.Tensor2D,
        activations: activationLayers.map(get),
      };
    },
    logits: (x) => logitsGraph.apply(x) as tf.Tensor2D,
    split: (layer) => {
      let s = splits.get(layer);
      if (!s) splits.set(layer, (s = splitLayers(logitsGraph, layer)));
      return s;
    },
  };
}
