/**
 * What one image costs a model, in floating-point operations of a forward pass, estimated from its
 * layers: a convolution's multiply-adds per output value times its outputs, a dense layer's weights,
 * one operation per output value for everything else (activations, pooling, normalisation, adds).
 * The service prices each model's images by it (ScreeningModel.tokensPerImage): a 224×224
 * MobileNetV2 forward is ~80× the bundled Fashion-MNIST CNN's, and a client's rate limit must see
 * that, or the larger model is a cheap way to take the machine.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as path from 'path';
import { dataInputs, graphNodes, GraphNodeJson } from './graphTopology';
import type { StoredModel } from './modelStore';

type Shape = ReadonlyArray<number | null>;

const elements = (shape: Shape): number => shape.slice(1).reduce<number>((a, d) => a * (d ?? 1), 1);

function shapesOf(s: unknown): Shape[] {
  if (!Array.isArray(s)) return [];
  return Array.isArray(s[0]) ? (s as Shape[]) : [s as Shape];
}

function layerFlops(layer: tf.layers.Layer): number {
  const config = layer.getConfig() as {
    kernelSize?: number | number[];
    filters?: number;
    depthMultiplier?: number;
    units?: number;
    prototypesPerClass?: number;
  };
  const [out] = shapesOf(layer.outputShape);
  // The shapes the layer was called on (its first call: a layer reused in a model costs per call,
  // which this undercounts; Keras classifiers do not reuse layers).
  const node = (layer as unknown as { inboundNodes?: Array<{ inputShapes?: unknown }> }).inboundNodes?.[0];
  const [input] = shapesOf(node?.inputShapes);
  if (!out) return 0;
  const outputs = elements(out);
  const k = config.kernelSize;
  const window = Array.isArray(k) ? k.reduce((a, b) => a * b, 1) : (k ?? 1) ** 2;
  const inChannels = (input?.[input.length - 1] ?? 0) as number;
  switch (layer.getClassName()) {
    case 'Conv2D':
    case 'Conv2DTranspose':
      return 2 * outputs * window * Math.max(inChannels, 1);
    case 'DepthwiseConv2D':
      return 2 * outputs * window;
    case 'SeparableConv2D': {
      const mult = config.depthMultiplier ?? 1;
      const spatial = elements(out) / (config.filters ?? 1);
      return 2 * spatial * Math.max(inChannels, 1) * mult * (window + (config.filters ?? 1));
    }
    case 'Dense':
      return 2 * (outputs / (config.units ?? 1)) * Math.max(inChannels, 1) * (config.units ?? 1);
    default:
      return customLayerFlops(layer.getClassName(), config.prototypesPerClass, outputs, inChannels) ?? outputs;
  }
}

/** advsieve's own head layers (src/engine/layers): a dense product, or a distance to each PNN prototype. */
function customLayerFlops(
  className: string,
  prototypesPerClass: number | undefined,
  outputs: number,
  inChannels: number,
): number | undefined {
  if (className === 'L2NormalizedDense') return 2 * outputs * Math.max(inChannels, 1);
  if (className === 'PnnHead') return 2 * outputs * Math.max(inChannels, 1) * (prototypesPerClass ?? 1);
  return undefined;
}

/**
 * One rate-limit token: the bundled Fashion-MNIST CNN's forward pass (8.49 MFLOP by forwardFlops),
 * the unit src/request/fieldCosts.ts's per-field figures were measured in.
 */
export const TOKEN_FLOPS = 8.5e6;

/** Tokens one image costs a model: its forward FLOPs in TOKEN_FLOPS, at least 1. */
export function tokensPerImageOf(flops: number): number {
  return Math.max(1, Math.round(flops / TOKEN_FLOPS));
}

/** Forward-pass floating-point operations for one image of a layers model. */
export function forwardFlops(model: tf.LayersModel): number {
  return model.layers.reduce((sum, layer) => sum + layerFlops(layer), 0);
}

/** The graph ops that carry a classifier's cost, by how a filter's shape prices an output value. */
const HEAVY_GRAPH_OPS: Readonly<Record<string, 'conv' | 'depthwise' | 'matmul'>> = {
  Conv2D: 'conv',
  _FusedConv2D: 'conv',
  DepthwiseConv2dNative: 'depthwise',
  FusedDepthwiseConv2dNative: 'depthwise',
  MatMul: 'matmul',
  _FusedMatMul: 'matmul',
};

/**
 * The same for a graph model: its convolutions and matrix products, priced by their filters' shapes
 * and their outputs' sizes (one forward pass on a blank image tells the sizes: a graph does not
 * record them). Element-wise ops are left out: next to the convolutions they are noise.
 */
export function graphForwardFlops(
  m: tf.GraphModel,
  nodes: readonly GraphNodeJson[],
  inputShape: readonly number[],
): number {
  const heavy = nodes.filter((n) => HEAVY_GRAPH_OPS[n.op] !== undefined);
  if (!heavy.length) return 0;
  const sizes = tf.tidy(() => {
    const outs = m.execute(
      tf.zeros([1, ...inputShape]),
      heavy.map((n) => n.name),
    );
    return (Array.isArray(outs) ? outs : [outs]).map((t) => t.size);
  });
  return heavy.reduce((sum, n, i) => {
    const filter = m.weights[dataInputs(n)[1]]?.[0]?.shape ?? [];
    const [kh = 1, kw = 1, cin = 1] = filter;
    const kind = HEAVY_GRAPH_OPS[n.op];
    const perOutput = kind === 'conv' ? kh * kw * cin : kind === 'depthwise' ? kh * kw : (filter[0] ?? 1);
    return sum + 2 * sizes[i] * perOutput;
  }, 0);
}

/** A stored model's forward FLOPs per image, whichever its format. */
export function storedModelFlops(stored: StoredModel): number {
  if (stored.model instanceof tf.LayersModel) return forwardFlops(stored.model);
  const json = JSON.parse(fs.readFileSync(path.join(stored.dir, 'model.json'), 'utf8')) as { modelTopology?: unknown };
  return graphForwardFlops(stored.model, graphNodes(json.modelTopology) ?? [], stored.metadata.inputShape);
}
