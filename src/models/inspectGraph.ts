/** A tfjs graph model as `advsieve import` sees it (src/models/modelInspection.ts). */
import * as tf from '@tensorflow/tfjs';
import type { BlockKind } from './activationRule';
import { ModelInspection } from './modelInspection';
import { dataInputs, GraphNodeJson, graphInputs, placeholderDtype, placeholderShape } from '../engine/graphTopology';
import { outputList } from '../engine/network';

const CONV_OPS = new Set(['Conv2D', '_FusedConv2D', 'DepthwiseConv2dNative', 'FusedDepthwiseConv2dNative']);
/** Ops that compute a dense layer's (or 1×1 conv head's) scores from its features. */
const PRODUCT_OPS = new Set(['MatMul', '_FusedMatMul', 'BatchMatMul', 'BatchMatMulV2', 'Conv2D', '_FusedConv2D']);
/** Ops between that product and the logits: its bias, copies. */
const AFTER_PRODUCT_OPS = new Set(['BiasAdd', 'Add', 'AddV2', 'Identity']);

export function inspectGraph(m: tf.GraphModel, nodes: readonly GraphNodeJson[]): ModelInspection {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const isConst = (name: string) => byName.get(name)?.op === 'Const';
  /** The inputs that are computed (not weights). */
  const computed = (n: GraphNodeJson) => dataInputs(n).filter((i) => !isConst(i));
  const blockKind = (n: GraphNodeJson): BlockKind | undefined => {
    // An Add of two computed tensors is a residual connection; one with a constant is a bias.
    if ((n.op === 'Add' || n.op === 'AddV2') && computed(n).length >= 2) return 'add';
    if ((n.op === 'ConcatV2' || n.op === 'Concat') && computed(n).length >= 2) return 'concat';
    return CONV_OPS.has(n.op) ? 'conv' : undefined;
  };
  const softmaxes = nodes.filter((n) => n.op === 'Softmax');
  const last = softmaxes[softmaxes.length - 1];
  const placeholders = graphInputs(nodes);
  const dtype = placeholders[0] && placeholderDtype(placeholders[0]);
  return {
    inputs: placeholders.map(placeholderShape),
    inputDtypeProblem: dtype === undefined || dtype === 'DT_FLOAT' ? undefined : `its input is ${dtype}, not DT_FLOAT`,
    softmax: last && { output: last.name, logits: computed(last)[0] },
    blocks: nodes.flatMap((n) => {
      const kind = blockKind(n);
      return kind ? [{ name: n.name, kind }] : [];
    }),
    has: (name) => byName.has(name),
    penultimate(logits) {
      let node = byName.get(logits);
      while (node && AFTER_PRODUCT_OPS.has(node.op)) node = byName.get(computed(node)[0]);
      return node && PRODUCT_OPS.has(node.op) ? computed(node)[0] : undefined;
    },
    outputs: (x, wanted) => outputList(m.execute(x, [...wanted])),
  };
}
