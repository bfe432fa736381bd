/**
 * The strongest attack here on the whole screening pipeline, as the literature asks of a detector's
 * evaluation (Carlini & Wagner, "Adversarial examples are not easily detected", 2017; Athalye, Carlini
 * & Wagner, "Obfuscated gradients give a false sense of security", 2018; Tramèr, Carlini, Brendel &
 * Madry, "On adaptive attacks to adversarial example defenses", 2020):
 *  - the loss is the classifier's logit margin (CW's f: the true class's logit over the best other's,
 *    floored at −κ; targeted: the best other's over the target's) plus w × the target's penalty
 *    (for the detector-aware target: every detector's and the combined verdict's excess over its
 *    threshold, the low-pass disagreement through the exact low-pass gradient). Margins, not cross-
 *    entropy, whose gradient vanishes once a prediction is confident;
 *  - sign-gradient steps in the L∞ ball with the step size halved at 40 %, 65 % and 85 % of the
 *    steps (the checkpoints of APGD's schedule, Croce & Hein 2020, without its adaptivity);
 *  - `restarts` runs, the first from the image itself and the others from random points of the ball;
 *  - per image the best iterate of every step of every run is kept: a success (misclassified, and
 *    the penalty 0: nothing over its threshold) first, then the lowest loss;
 *  - the pipeline has no randomness, so EOT is one sample; the one non-differentiable step, the
 *    predicted class that picks each detector's class statistics, is piecewise constant and the
 *    gradient flows through the scores at the current class (BPDA with the identity, Athalye et al.).
 * An unbounded budget (ε = 1) must reach 100 %: a lower figure means the attack, not the detector, failed.
 */
import * as tf from '@tensorflow/tfjs';
import { ownAndBestOther } from '../engine/logitMargin';
import { Attack, AttackName, AttackOptions, AttackTarget } from './attack';
import { projectedSignStep, uniformStart } from './pgd';
import { CheckedCall, checkCall, inBatches, classOneHot } from './target';

export const DEFAULT_END_TO_END_STEPS = 200;
export const DEFAULT_END_TO_END_RESTARTS = 2;
/** Fractions of the steps where the step size halves. */
const HALVINGS = [0.4, 0.65, 0.85];

export interface EndToEndConfig {
  /** Runs per image (default 2). */
  readonly restarts?: number;
}

/** Per image: the margin loss (≤ −κ once past the boundary by κ) and the penalty; the loss is their weighted sum. */
function parts(target: AttackTarget, x: tf.Tensor4D, call: CheckedCall, onehot: tf.Tensor2D, kappa: number) {
  const logits = target.logits(x);
  const { own, other } = ownAndBestOther(logits, onehot);
  const margin = tf.maximum(call.targeted ? tf.sub(other, own) : tf.sub(own, other), -kappa) as tf.Tensor1D;
  const penalty = target.penalty ? target.penalty(x) : (tf.zerosLike(margin) as tf.Tensor1D);
  const loss = tf.add(margin, tf.mul(penalty, call.penaltyWeight)) as tf.Tensor1D;
  // Success: past the boundary (targeted: at the target) and under every threshold.
  const predicted = tf.argMax(logits, 1);
  const wanted = tf.argMax(onehot, 1);
  const onTarget = call.targeted ? tf.equal(predicted, wanted) : tf.notEqual(predicted, wanted);
  const success = tf.logicalAnd(onTarget, tf.lessEqual(penalty, 0));
  return { loss, success };
}

export class EndToEnd implements Attack {
  readonly name = 'pgd-e2e' as AttackName;
  readonly restarts: number;

  constructor(config: EndToEndConfig = {}) {
    this.restarts = config.restarts ?? DEFAULT_END_TO_END_RESTARTS;
    if (!(Number.isInteger(this.restarts) && this.restarts >= 1))
      throw new RangeError(`restarts: expected an integer ≥ 1, got ${config.restarts}`);
  }

  async run(target: AttackTarget, x: tf.Tensor4D, labels: Int32Array, options: AttackOptions): Promise<tf.Tensor4D> {
    const call = checkCall(target, x, labels, options);
    const steps = options.steps ?? DEFAULT_END_TO_END_STEPS;
    const stepSize = options.stepSize ?? call.epsilon / 4;
    const kappa = options.confidence ?? 0;
    if (!(kappa >= 0 && Number.isFinite(kappa)))
      throw new RangeError(`confidence: expected a finite number ≥ 0, got ${kappa}`);
    return inBatches(x, call.batchSize, (xb, first) =>
      this.attackBatch(target, xb, call, first, { steps, stepSize, kappa, trace: options.trace }),
    );
  }

  private async attackBatch(
    target: AttackTarget,
    x: tf.Tensor4D,
    call: CheckedCall,
    first: number,
    settings: { steps: number; stepSize: number; kappa: number; trace: AttackOptions['trace'] },
  ): Promise<tf.Tensor4D> {
    const { steps, stepSize, kappa, trace } = settings;
    const n = x.shape[0];
    const eps = call.epsilon;
    const onehot = classOneHot(call, first, n);
    // The gradient's forward pass also gives the iterate's loss and success (kept out of its tidy):
    // judging the iterate needs no second pass through the pipeline.
    let seen: { loss: tf.Tensor1D; success: tf.Tensor } | undefined;
    const gradient = tf.grad((xa: tf.Tensor) => {
      const p = parts(target, xa as tf.Tensor4D, call, onehot, kappa);
      seen = { loss: tf.keep(p.loss), success: tf.keep(p.success) };
      return tf.sum(p.loss);
    });
    // The best so far per image: rank = loss, minus a large constant for a success.
    let best = tf.clone(x);
    let bestRank = tf.fill([n], Infinity) as tf.Tensor1D;
    /** Judges iterate `xa` by its `loss` and `success` (disposed here) against the best so far; returns the mean loss. */
    const keep = (xa: tf.Tensor4D, loss: tf.Tensor1D, success: tf.Tensor) => {
      const next = tf.tidy(() => {
        const rank = tf.where(success, tf.sub(loss, 1e6), loss) as tf.Tensor1D;
        const better = tf.less(rank, bestRank);
        const mask = tf.greater(tf.add(tf.zerosLike(xa), tf.reshape(tf.cast(better, 'float32'), [n, 1, 1, 1])), 0.5);
        return {
          x: tf.where(mask, xa, best) as tf.Tensor4D,
          rank: tf.where(better, rank, bestRank) as tf.Tensor1D,
          loss: tf.mean(loss),
        };
      });
      tf.dispose([loss, success, best, bestRank]);
      best = next.x;
      bestRank = next.rank;
      return next.loss;
    };
    try {
      for (let run = 0; run < this.restarts; run++) {
        let xa: tf.Tensor4D =
          run === 0
            ? tf.clone(x)
            : (tf.tidy(() =>
                tf.clipByValue(
                  tf.add(x, tf.tensor(uniformStart(x.shape, eps, call.seed + run * 7919, first), x.shape)),
                  0,
                  1,
                ),
              ) as tf.Tensor4D);
        try {
          for (let step = 0; step < steps; step++) {
            const halvings = HALVINGS.filter((h) => step >= h * steps).length;
            const size = stepSize * 0.5 ** halvings;
            // Descends: the loss here is the attacker's, to be minimised.
            const next = tf.tidy(() => projectedSignStep(x, xa, gradient(xa), -size, eps));
            // The iterate the gradient was taken at (the start, then each step's result).
            const mean = keep(xa, seen!.loss, seen!.success);
            if (trace && step > 0) trace(run * steps + step - 1, (await mean.data())[0], n);
            mean.dispose();
            xa.dispose();
            xa = next;
            await tf.nextFrame();
          }
          // The last iterate, judged on its own pass.
          const last = tf.tidy(() => parts(target, xa, call, onehot, kappa));
          const mean = keep(xa, last.loss, last.success);
          if (trace) trace(run * steps + steps - 1, (await mean.data())[0], n);
          mean.dispose();
        } finally {
          xa.dispose();
        }
      }
      return best;
    } catch (err) {
      best.dispose();
      throw err;
    } finally {
      tf.dispose([onehot, bestRank]);
    }
  }
}
