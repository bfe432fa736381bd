/**
 * What one image costs a model, in floating-point operations of a forward pass, estimated from its
 * layers: a convolution's multiply-adds per output value times its outputs, a dense layer's weights,
 * one operation per output value for everything else (activations, pooling, normalisation, adds).
 * The service prices each model's images by it (ScreeningModel.tokensPerImage): a 224×224
 * MobileNetV2 forward is ~80× the bundled Fashion-MNIST CNN's, and a client's rate limit must see
 * that, or the larger model is a cheap way to take the machine.
 */
import type * as tf from '@tensorflow/tfjs';

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
      return outputs;
  }
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

/** Forward-pass floating-point operations for one image. */
export function forwardFlops(model: tf.LayersModel): number {
  return model.layers.reduce((sum, layer) => sum + layerFlops(layer), 0);
}
