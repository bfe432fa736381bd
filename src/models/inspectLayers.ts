/** A tfjs layers model as `advsieve import` sees it (src/models/modelInspection.ts). */
import * as tf from '@tensorflow/tfjs';
import type { BlockKind } from './activationRule';
import { FinalSoftmax, ModelInspection } from './modelInspection';
import { outputList } from '../engine/network';

const BLOCK_KINDS: Readonly<Record<string, BlockKind>> = {
  Add: 'add',
  Concatenate: 'concat',
  Conv2D: 'conv',
  DepthwiseConv2D: 'conv',
  SeparableConv2D: 'conv',
};

/** Layers that are the identity at inference: the penultimate features are what they pass on. */
const PASS_THROUGH = new Set(['Dropout', 'SpatialDropout1D', 'SpatialDropout2D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout']);

function inbound(layer: tf.layers.Layer): tf.layers.Layer | undefined {
  return layer.inboundNodes[0]?.inboundLayers[0];
}

function finalSoftmax(m: tf.LayersModel): FinalSoftmax | undefined {
  const last = m.outputs[0].sourceLayer as tf.layers.Layer;
  const config = last.getConfig();
  const cls = last.getClassName();
  if (cls === 'Softmax' || (cls === 'Activation' && config.activation === 'softmax')) {
    const before = inbound(last);
    return before
      ? { output: last.name, logits: before.name }
      : { problem: `its softmax layer '${last.name}' has no layer before it` };
  }
  if (config.activation !== 'softmax') return undefined;
  if (cls === 'Dense') return { output: last.name, logits: last.name };
  return { problem: `its last layer '${last.name}' is a ${cls} with a softmax inside; only a Dense's logits can be split off` };
}

export function inspectLayers(m: tf.LayersModel): ModelInspection {
  const names = new Set(m.layers.map((l) => l.name));
  return {
    inputs: m.inputs.map((i) => i.shape),
    inputDtypeProblem: m.inputs[0]?.dtype === 'float32' ? undefined : `its input is ${m.inputs[0]?.dtype}, not float32`,
    softmax: m.outputs.length === 1 ? finalSoftmax(m) : { problem: `it has ${m.outputs.length} outputs, not one` },
    blocks: m.layers.flatMap((l) => {
      const kind = BLOCK_KINDS[l.getClassName()];
      return kind ? [{ name: l.name, kind }] : [];
    }),
    has: (name) => names.has(name),
    penultimate(logits) {
      let layer = inbound(m.getLayer(logits));
      while (layer && PASS_THROUGH.has(layer.getClassName())) layer = inbound(layer);
      return layer && layer.getClassName() !== 'InputLayer' ? layer.name : undefined;
    },
    outputs(x, wanted) {
      const probe = tf.model({ inputs: m.inputs, outputs: wanted.map((n) => m.getLayer(n).output as tf.SymbolicTensor) });
      return outputList(probe.apply(x) as tf.Tensor | tf.Tensor[]);
    },
  };
}
