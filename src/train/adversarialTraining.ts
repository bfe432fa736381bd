/**
 * Adversarial training: each training batch is replaced by adversarial versions of itself, made
 * against the model being trained, before the weights' gradient is taken (Madry et al. 2018,
 * "Towards Deep Learning Models Resistant to Adversarial Attacks": min over weights of the max
 * over the ε-ball of the loss).
 *
 * - `fgsm-rs`: one sign step of size α = 1.25·ε from a uniform random start in the ε-ball, then the
 *   projection (Wong, Rice & Kolter 2020, "Fast is better than free"). Twice a plain step's cost.
 *   The random start is what keeps single-step training from "catastrophic overfitting" (a model
 *   robust to FGSM only); α = 1.25·ε is the paper's setting.
 * - `pgd`: `steps` sign steps of size α (default 2.5·ε/steps) from a random start (Madry et al.).
 *   steps + 1 times a plain step's cost.
 * - `atta`: accumulated perturbations (Zheng et al. 2020, "Efficient Adversarial Training with
 *   Transferable Adversarial Examples"). Each image's perturbation is kept between epochs and the
 *   next visit starts from it (the first from a uniform random start), then takes `steps` sign steps
 *   of α (default one of ε/2). A perturbation carried over from the last epoch's model still hurts
 *   this epoch's (adversarial examples transfer between nearby models), so over the epochs each
 *   image's perturbation is a many-step PGD's at FGSM-RS's cost per step. The store is one float per
 *   training pixel (188 MB for Fashion-MNIST), shared between the worker replicas.
 *
 * The inner attack runs on the training graph in training mode (batch statistics, the step's own
 * dropout masks), as both papers do: the perturbation is the one that hurts the step's loss.
 */
import * as tf from '@tensorflow/tfjs';
import { crossEntropy } from '../attacks/crossEntropy';
import { projectedSignStep } from '../attacks/pgd';
import { mulberry32 } from './random';

export type AdversarialMethod = 'fgsm-rs' | 'pgd' | 'atta';
export const ADVERSARIAL_METHODS: readonly AdversarialMethod[] = ['fgsm-rs', 'pgd', 'atta'];

export interface AdversarialTrainingOptions {
  readonly method: AdversarialMethod;
  /** L∞ radius of the training perturbations (pixels in [0, 1]). */
  readonly epsilon: number;
  /** PGD iterations (default 7), ATTA's per visit (default 1); FGSM-RS takes one step. */
  readonly steps?: number;
  /** Step size α (default 1.25·ε for FGSM-RS, 2.5·ε/steps for PGD, ε/2 for ATTA). */
  readonly stepSize?: number;
}

export interface AdversarialSchedule {
  readonly steps: number;
  readonly stepSize: number;
}

/** The inner attack's steps and step size with their defaults; throws on settings that make no sense. */
export function adversarialSchedule(opts: AdversarialTrainingOptions): AdversarialSchedule {
  if (!ADVERSARIAL_METHODS.includes(opts.method))
    throw new RangeError(`adversarial method: expected one of ${ADVERSARIAL_METHODS.join(', ')}, got ${opts.method}`);
  if (!(opts.epsilon > 0 && opts.epsilon <= 1))
    throw new RangeError(`adversarial epsilon: expected a number in (0, 1], got ${opts.epsilon}`);
  const steps = opts.method === 'fgsm-rs' ? 1 : (opts.steps ?? (opts.method === 'atta' ? 1 : 7));
  if (!(Number.isInteger(steps) && steps >= 1))
    throw new RangeError(`adversarial steps: expected an integer ≥ 1, got ${steps}`);
  const defaultStepSize = {
    'fgsm-rs': 1.25 * opts.epsilon,
    pgd: (2.5 * opts.epsilon) / steps,
    atta: 0.5 * opts.epsilon,
  }[opts.method];
  const stepSize = opts.stepSize ?? defaultStepSize;
  if (!(stepSize > 0 && Number.isFinite(stepSize)))
    throw new RangeError(`adversarial step size: expected a finite number > 0, got ${stepSize}`);
  return { steps, stepSize };
}

/**
 * Adversarial versions of the batch x (values in [0, 1]) with one-hot labels `target`, against
 * `logitsOf` (the model in training mode). Returns a new tensor in the ε-ball around x and in [0, 1];
 * x is not disposed. The attack starts from x + `start` (a perturbation, x's shape, ATTA's carried
 * one) when given, else from a uniform random start drawn from `seed`, so a step is reproducible.
 */
export function adversarialBatch(
  logitsOf: (x: tf.Tensor4D) => tf.Tensor2D,
  x: tf.Tensor4D,
  target: tf.Tensor2D,
  opts: AdversarialTrainingOptions,
  seed: number,
  start?: Float32Array,
): tf.Tensor4D {
  const { steps, stepSize } = adversarialSchedule(opts);
  const eps = opts.epsilon;
  if (start && start.length !== x.size)
    throw new RangeError(`adversarial start: expected ${x.size} values (the batch's), got ${start.length}`);
  const noise = start ?? fillRandomStart(new Float32Array(x.size), eps, seed);
  const gradient = tf.grad((xa: tf.Tensor) => tf.sum(crossEntropy(logitsOf(xa as tf.Tensor4D), target)));
  // The carried start is projected too: a stored perturbation is in the ball by construction, but a
  // caller's need not be.
  let xa = tf.tidy(() =>
    tf.clipByValue(tf.add(x, tf.clipByValue(tf.tensor(noise, x.shape), -eps, eps)), 0, 1),
  ) as tf.Tensor4D;
  for (let s = 0; s < steps; s++) {
    const next = tf.tidy(() => projectedSignStep(x, xa, gradient(xa), stepSize, eps));
    xa.dispose();
    xa = next;
  }
  return xa;
}

/** Fills `out` with values drawn uniformly from [−ε, ε) with `seed`: the random start of the inner attacks. */
function fillRandomStart<T extends Float32Array>(out: T, epsilon: number, seed: number): T {
  const random = mulberry32(seed);
  for (let i = 0; i < out.length; i++) out[i] = (2 * random() - 1) * epsilon;
  return out;
}

/**
 * ATTA's store of one perturbation per training image (`images` × `pixels` floats), each from a
 * uniform random start in the ε-ball (seeded), in shared memory so that every worker replica reads
 * and writes it: within a step the replicas' shards are disjoint images.
 */
export function perturbationStore(images: number, pixels: number, epsilon: number, seed: number): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(images * pixels * Float32Array.BYTES_PER_ELEMENT);
  fillRandomStart(new Float32Array(buffer), epsilon, seed);
  return buffer;
}
