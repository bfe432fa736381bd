/**
 * A loaded network as InferenceModel uses it, whichever format it came in (src/engine/
 * layersNetwork.ts, src/engine/graphNetwork.ts): for a batch already in the network's own input
 * space (preprocessed), the probabilities, the logits and the named activations.
 */
import * as tf from '@tensorflow/tfjs';

export interface NetworkOutputs {
  /** Undefined when the model ends in its logits (metadata without outputLayer). */
  readonly probs?: tf.Tensor2D;
  readonly logits: tf.Tensor2D;
  /** One per activation layer, in the order asked for, as the network outputs them (not pooled). */
  readonly activations: tf.Tensor[];
}

export interface Network {
  /** `differentiable`: on the path tf.grad can follow (adaptive attacks differentiate the detectors). */
  run(x: tf.Tensor4D, differentiable: boolean): NetworkOutputs;
  /** Logits only, differentiable (the path attacks and gradients take). */
  logits(x: tf.Tensor4D): tf.Tensor2D;
  /**
   * The network cut at one layer (graph: node): the input up to its output, and from a value of
   * that output on to the logits, differentiable (Grad-CAM's gradient is the logits' with respect
   * to a layer's activations). Throws when something after the layer also reads from before it
   * (a skip connection across it): cut at a layer every later one depends on through it alone.
   */
  split(layer: string): NetworkSplit;
}

export interface NetworkSplit {
  head(x: tf.Tensor4D): tf.Tensor;
  tail(activation: tf.Tensor): tf.Tensor2D;
}

/** A model's outputs as a list (tfjs returns a lone tensor when there is one). */
export function outputList(outs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
  return Array.isArray(outs) ? outs : [outs];
}
