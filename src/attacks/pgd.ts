/**
 * Projected gradient descent in L∞ from a uniform random start in the ε-ball: Madry, Makelov,
 * Schmidt, Tsipras, Vladu, "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018.
 * As in Foolbox's gradient_descent_base, the sign-gradient step is shared with FGSM, which is this
 * attack with one step of size ε and no random start.
 */
import * as tf from '@tensorflow/tfjs';
import { Attack, AttackName, AttackOptions, AttackTarget } from './attack';
import { crossEntropy } from './crossEntropy';
import { checkCall, CheckedCall, imageRandom, inBatches, classOneHot } from './target';

export { crossEntropy };

export const DEFAULT_PGD_STEPS = 40;

export interface PgdConfig {
  /** Start from a uniform random point of the ε-ball (default true); the start is drawn from the seed. */
  readonly randomStart?: boolean;
}

export interface SignStepSchedule {
  readonly steps: number;
  readonly stepSize: number;
  readonly randomStart: boolean;
}

/**
 * The loss the attacker ascends, summed over the batch so that each image's gradient is its own:
 * CE(true label) − w·penalty untargeted, −CE(target) − w·penalty targeted.
 */
function objective(target: AttackTarget, call: CheckedCall, onehot: tf.Tensor2D): (x: tf.Tensor) => tf.Scalar {
  return (x) => {
    const xa = x as tf.Tensor4D;
    const ce = crossEntropy(target.logits(xa), onehot);
    let loss = call.targeted ? tf.neg(ce) : ce;
    if (target.penalty) loss = tf.sub(loss, tf.mul(target.penalty(xa), call.penaltyWeight));
    return tf.sum(loss);
  };
}

/** Uniform noise in [−ε, ε] for images first .. first + n − 1, each from its own seeded stream. */
export function uniformStart(shape: readonly number[], epsilon: number, seed: number, first: number): Float32Array {
  const size = shape[1] * shape[2] * shape[3];
  const noise = new Float32Array(shape[0] * size);
  for (let i = 0; i < shape[0]; i++) {
    const random = imageRandom(seed, first + i);
    for (let j = 0; j < size; j++) noise[i * size + j] = (2 * random() - 1) * epsilon;
  }
  return noise;
}

/**
 * One sign-gradient step of `size` from xa (a negative size descends), projected onto x's L∞ ball of
 * radius ε and then onto the image box: x ∈ [0, 1] keeps the result in the ball. PGD's, adversarial
 * training's and the end-to-end attack's step; call it inside a tidy.
 */
export function projectedSignStep(
  x: tf.Tensor4D,
  xa: tf.Tensor4D,
  gradient: tf.Tensor,
  size: number,
  epsilon: number,
): tf.Tensor4D {
  const moved = tf.add(xa, tf.mul(tf.sign(gradient), size));
  return tf.clipByValue(tf.add(x, tf.clipByValue(tf.sub(moved, x), -epsilon, epsilon)), 0, 1) as tf.Tensor4D;
}

async function attackBatch(
  target: AttackTarget,
  x: tf.Tensor4D,
  call: CheckedCall,
  first: number,
  schedule: SignStepSchedule,
): Promise<tf.Tensor4D> {
  const n = x.shape[0];
  const eps = call.epsilon;
  const onehot = classOneHot(call, first, n);
  const gradient = tf.grad(objective(target, call, onehot));
  let xa: tf.Tensor4D = schedule.randomStart
    ? (tf.tidy(() =>
        tf.clipByValue(tf.add(x, tf.tensor(uniformStart(x.shape, eps, call.seed, first), x.shape)), 0, 1),
      ) as tf.Tensor4D)
    : tf.clone(x);
  try {
    for (let step = 0; step < schedule.steps; step++) {
      const next: tf.Tensor4D = tf.tidy(() => projectedSignStep(x, xa, gradient(xa), schedule.stepSize, eps));
      xa.dispose();
      xa = next;
      // Lets other work (a server's requests) run between steps of a long attack.
      if (step + 1 < schedule.steps) await tf.nextFrame();
    }
    return xa;
  } catch (err) {
    xa.dispose();
    throw err;
  } finally {
    onehot.dispose();
  }
}

/** L∞ sign-gradient steps with projection: the body of PGD and FGSM. */
export async function linfSignGradient(
  target: AttackTarget,
  x: tf.Tensor4D,
  labels: Int32Array,
  options: AttackOptions,
  schedule: SignStepSchedule,
): Promise<tf.Tensor4D> {
  const call = checkCall(target, x, labels, options);
  if (call.epsilon === 0) return tf.clone(x);
  if (!(schedule.stepSize > 0 && Number.isFinite(schedule.stepSize)))
    throw new RangeError(`stepSize: expected a finite number > 0, got ${schedule.stepSize}`);
  return inBatches(x, call.batchSize, (xb, first) => attackBatch(target, xb, call, first, schedule));
}

/** PGD-L∞: options.steps iterations (default 40) of size options.stepSize (default 2.5·ε/steps). */
export class ProjectedGradientDescent implements Attack {
  readonly name: AttackName = 'pgd';
  readonly randomStart: boolean;

  constructor(config: PgdConfig = {}) {
    if (config.randomStart !== undefined && typeof config.randomStart !== 'boolean')
      throw new TypeError(`randomStart: expected a boolean, got ${String(config.randomStart)}`);
    this.randomStart = config.randomStart ?? true;
  }

  run(target: AttackTarget, x: tf.Tensor4D, labels: Int32Array, options: AttackOptions): Promise<tf.Tensor4D> {
    const steps = options.steps ?? DEFAULT_PGD_STEPS;
    // Madry et al.'s 2.5·ε/steps lets the iterate cross the ball and back within the budget.
    const stepSize = options.stepSize ?? (2.5 * options.epsilon) / steps;
    return linfSignGradient(target, x, labels, options, { steps, stepSize, randomStart: this.randomStart });
  }
}
