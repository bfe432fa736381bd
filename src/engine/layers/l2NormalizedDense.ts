/**
 * A dense classification layer whose penultimate features and/or class weight vectors are L2
 * normalised, times a fixed scale s — the "L2 normalisation" control of the causes-of-adversarial-
 * examples study (model linearity): with both normalised, logit_k = s·cos(f, w_k), bounded by s
 * whatever the input, so no perturbation can grow a logit linearly with the features' norm
 * (NormFace, Wang et al. 2017; L2-constrained softmax, Ranjan et al. 2017).
 *
 *   features: logits = s·(f/|f|)·W + b       (the features on a sphere of radius s)
 *   weights:  logits = s·f·(W/|W|)           (each class vector of norm 1, no bias)
 *   both:     logits = s·cos(f, w_k)         (|logit| ≤ s, no bias)
 *
 * The scale is fixed, not learned: a learned s grows during training (it lowers the loss of every
 * correctly classified image), which gives the linearity back. A tfjs-serializable layer, registered
 * by registerCustomLayers (src/engine/layers/customLayers.ts) before any model is loaded.
 */
import * as tf from '@tensorflow/tfjs';
import { singleInput, singleShape, unitsOutputShape } from './layerShapes';

type LayerArgs = ConstructorParameters<typeof tf.layers.Layer>[0];

export type L2NormMode = 'features' | 'weights' | 'both';
export const L2_NORM_MODES: readonly L2NormMode[] = ['features', 'weights', 'both'];

/** Added under the square root: an all-zero feature vector (every ReLU off) maps to zero, not NaN. */
const NORM_EPSILON = 1e-12;

export interface L2NormalizedDenseArgs {
  readonly units: number;
  readonly normalize: L2NormMode;
  readonly scale: number;
  readonly name?: string;
  /** Seed of the kernel's Glorot-uniform initialisation (building only; a loaded model has its weights). */
  readonly seed?: number;
  readonly trainable?: boolean;
}

/** Rows of x divided by their L2 norms (along the last axis). */
export function l2NormalizeRows(x: tf.Tensor, axis = -1): tf.Tensor {
  return tf.tidy(() => tf.div(x, tf.sqrt(tf.add(tf.sum(tf.square(x), axis, true), NORM_EPSILON))));
}

export class L2NormalizedDense extends tf.layers.Layer {
  static readonly className = 'L2NormalizedDense';
  readonly units: number;
  readonly normalize: L2NormMode;
  readonly scale: number;
  private readonly seed?: number;
  private kernel?: tf.LayerVariable;
  private bias?: tf.LayerVariable;

  constructor(args: L2NormalizedDenseArgs) {
    // The rest of a deserialised config (dtype, batch input shape) is the base class's.
    super(args as unknown as LayerArgs);
    if (!(Number.isInteger(args.units) && args.units > 0))
      throw new RangeError(`L2NormalizedDense units: expected an integer > 0, got ${args.units}`);
    if (!L2_NORM_MODES.includes(args.normalize))
      throw new RangeError(
        `L2NormalizedDense normalize: expected one of ${L2_NORM_MODES.join(', ')}, got ${args.normalize}`,
      );
    if (!(args.scale > 0 && Number.isFinite(args.scale)))
      throw new RangeError(`L2NormalizedDense scale: expected a finite number > 0, got ${args.scale}`);
    this.units = args.units;
    this.normalize = args.normalize;
    this.scale = args.scale;
    this.seed = args.seed;
  }

  /** Whether the layer has a bias (only when the class vectors are free: 'features'). */
  get useBias(): boolean {
    return this.normalize === 'features';
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape);
    const inputDim = shape[shape.length - 1] as number;
    this.kernel = this.addWeight(
      'kernel',
      [inputDim, this.units],
      'float32',
      tf.initializers.glorotUniform({ seed: this.seed }),
    );
    if (this.useBias) this.bias = this.addWeight('bias', [this.units], 'float32', tf.initializers.zeros());
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return unitsOutputShape(inputShape, this.units);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = singleInput(inputs);
      const kernel = this.kernel!.read() as tf.Tensor2D;
      const f = this.normalize === 'weights' ? x : (l2NormalizeRows(x) as tf.Tensor2D);
      const w = this.normalize === 'features' ? kernel : (l2NormalizeRows(kernel, 0) as tf.Tensor2D);
      const y = tf.mul(tf.matMul(f, w), this.scale);
      return this.bias ? tf.add(y, this.bias.read()) : y;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), units: this.units, normalize: this.normalize, scale: this.scale };
  }
}
