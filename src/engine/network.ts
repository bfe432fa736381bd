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
}

/** A model's outputs as a list (tfjs returns a lone tensor when there is one). */
export function outputList(outs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
  return Array.isArray(outs) ? outs : [outs];
}
