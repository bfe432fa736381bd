/**
 * A probabilistic-neural-network head (Specht 1990, "Probabilistic neural networks"; the MLP-PNN of
 * the causes-of-adversarial-examples study): each class is a mixture of M isotropic Gaussian kernels
 * around learned prototypes in feature space, with one learned width σ, and the layer outputs each
 * class's log-density
 *
 *   logit_k(f) = log( (1/M) Σ_m N(f; μ_km, σ²I) )
 *             = logsumexp_m(−|f − μ_km|² / 2σ²) − log M − D·log σ − (D/2)·log 2π
 *
 * so a softmax over the logits is the Bayes posterior with equal class priors, and an image far from
 * every prototype has low density under every class. That is what a softmax over a linear layer
 * cannot say; here a fixed "background" density b (log b: the non-trainable weight log_background)
 * stands for "none of the classes":
 *
 *   p(none | f) = b / (b + (1/K) Σ_k d_k(f)) = sigmoid(log b − (logsumexp_k logit_k − log K))
 *
 * b gets no gradient from a classification loss (it is in no class's numerator), so the trainer
 * sets it after training from the training images' densities (src/train/pnnBackground.ts) and the
 * model's metadata records it: noneProbability() needs only the logits and log b.
 *
 * With `normalizeFeatures`, the features are L2-normalised first (prototypes then live near the unit
 * sphere). A tfjs-serializable layer, registered by registerCustomLayers before any model is loaded.
 */
import * as tf from '@tensorflow/tfjs';
import { singleInput, singleShape, unitsOutputShape } from './layerShapes';
import { l2NormalizeRows } from './l2NormalizedDense';

type LayerArgs = ConstructorParameters<typeof tf.layers.Layer>[0];

/** log b before the trainer sets it: so low that p(none) is 0 for any image. */
export const UNSET_LOG_BACKGROUND = -1e4;

export interface PnnHeadArgs {
  /** Classes K. */
  readonly units: number;
  /** Prototypes (kernels) per class, M. */
  readonly prototypesPerClass: number;
  readonly normalizeFeatures?: boolean;
  readonly name?: string;
  /** Seed of the prototypes' initialisation (building only). */
  readonly seed?: number;
  readonly trainable?: boolean;
}

export class PnnHead extends tf.layers.Layer {
  static readonly className = 'PnnHead';
  readonly units: number;
  readonly prototypesPerClass: number;
  readonly normalizeFeatures: boolean;
  private readonly seed?: number;
  private prototypes?: tf.LayerVariable;
  private logSigma?: tf.LayerVariable;
  private logBackground?: tf.LayerVariable;
  private featureDim = 0;

  constructor(args: PnnHeadArgs) {
    // The rest of a deserialised config (dtype, batch input shape) is the base class's.
    super(args as unknown as LayerArgs);
    if (!(Number.isInteger(args.units) && args.units > 0))
      throw new RangeError(`PnnHead units: expected an integer > 0, got ${args.units}`);
    if (!(Number.isInteger(args.prototypesPerClass) && args.prototypesPerClass > 0))
      throw new RangeError(`PnnHead prototypesPerClass: expected an integer > 0, got ${args.prototypesPerClass}`);
    this.units = args.units;
    this.prototypesPerClass = args.prototypesPerClass;
    this.normalizeFeatures = args.normalizeFeatures ?? false;
    this.seed = args.seed;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape);
    this.featureDim = shape[shape.length - 1] as number;
    // Prototypes near the features' scale at initialisation: ReLU features of order 1 (unit-norm when normalised).
    const std = this.normalizeFeatures ? 1 / Math.sqrt(this.featureDim) : 0.5;
    this.prototypes = this.addWeight(
      'prototypes',
      [this.units * this.prototypesPerClass, this.featureDim],
      'float32',
      tf.initializers.randomNormal({ mean: 0, stddev: std, seed: this.seed }),
    );
    this.logSigma = this.addWeight(
      'log_sigma',
      [1],
      'float32',
      tf.initializers.constant({ value: this.normalizeFeatures ? Math.log(0.5) : 0 }),
    );
    this.logBackground = this.addWeight(
      'log_background',
      [1],
      'float32',
      tf.initializers.constant({ value: UNSET_LOG_BACKGROUND }),
      undefined,
      false,
    );
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return unitsOutputShape(inputShape, this.units);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = singleInput(inputs);
      const f = this.normalizeFeatures ? (l2NormalizeRows(x) as tf.Tensor2D) : x;
      const p = this.prototypes!.read() as tf.Tensor2D;
      const logSigma = this.logSigma!.read();
      // |f − μ|² = |f|² − 2 f·μ + |μ|², one matMul for all prototypes; rounding can leave it a hair below 0.
      const d2 = tf.relu(
        tf.add(
          tf.sub(tf.sum(tf.square(f), 1, true), tf.mul(tf.matMul(f, p, false, true), 2)),
          tf.reshape(tf.sum(tf.square(p), 1), [1, -1]),
        ),
      );
      const exponent = tf.div(tf.neg(d2), tf.mul(tf.exp(tf.mul(logSigma, 2)), 2));
      const perClass = tf.reshape(exponent, [-1, this.units, this.prototypesPerClass]);
      const d = this.featureDim;
      const constant = tf.add(tf.mul(logSigma, d), Math.log(this.prototypesPerClass) + (d / 2) * Math.log(2 * Math.PI));
      return tf.sub(tf.logSumExp(perClass, 2), constant);
    });
  }

  /** σ, the kernels' width. */
  sigma(): number {
    return Math.exp(this.logSigma!.read().dataSync()[0]);
  }

  getLogBackground(): number {
    return this.logBackground!.read().dataSync()[0];
  }

  setLogBackground(value: number): void {
    if (!Number.isFinite(value)) throw new RangeError(`log background density: expected a finite number, got ${value}`);
    const t = tf.tensor1d([value]);
    this.logBackground!.write(t);
    t.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      units: this.units,
      prototypesPerClass: this.prototypesPerClass,
      normalizeFeatures: this.normalizeFeatures,
    };
  }
}

/** log of the mixture density (1/K) Σ_k d_k: the density of an image's features under any class. */
export function logTotalDensity(logits: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.sub(tf.logSumExp(logits, 1), Math.log(logits.shape[1])) as tf.Tensor1D);
}

/** p(none | x) for each row of a PNN head's logits (class log-densities), given log b. */
export function noneProbability(logits: tf.Tensor2D, logBackground: number): tf.Tensor1D {
  return tf.tidy(() => tf.sigmoid(tf.sub(logBackground, logTotalDensity(logits))) as tf.Tensor1D);
}

/** noneProbability for one image's logits as plain numbers (what the engine returns), in float64. */
export function noneProbabilityOf(logits: ArrayLike<number>, logBackground: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const logTotal = max + Math.log(sum) - Math.log(logits.length);
  return 1 / (1 + Math.exp(logTotal - logBackground));
}
