/** What the custom layers share of tfjs' Layer calling conventions: one input, a last axis mapped to `units`. */
import * as tf from '@tensorflow/tfjs';

/** The shape of a layer's single input (tfjs may pass a list of one). */
export function singleShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
  return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
}

/** The layer's single input tensor, as 2-D features [N, D]. */
export function singleInput(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor2D {
  return (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor2D;
}

/** The input's shape with its last axis replaced by `units`. */
export function unitsOutputShape(inputShape: tf.Shape | tf.Shape[], units: number): tf.Shape {
  return [...singleShape(inputShape).slice(0, -1), units];
}
