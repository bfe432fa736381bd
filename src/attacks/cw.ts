/**
 * Carlini–Wagner L2: Carlini, Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P
 * 2017. Adam on a tanh-space variable (the box constraint without clipping) minimises
 * ‖δ‖²₂ + c·f(x′) (+ w·penalty), f the logit margin floored at −κ; a per-image binary search over c
 * trades distortion against success, and the smallest successful adversarial is kept.
 */
import * as tf from '@tensorflow/tfjs';
import { ownAndBestOther } from '../engine/logitMargin';
import { Attack, AttackName, AttackOptions, AttackTarget } from './attack';
import { checkCall, CheckedCall, inBatches, classOneHot } from './target';

export interface CwConfig {
  /** Binary-search steps over the constant c (default 3). */
  readonly searchSteps?: number;
  /** The first c (default 1). */
  readonly initialConst?: number;
  /** κ: the logit margin a success must exceed (default 0). */
  readonly confidence?: number;
}

/** Defaults sized for budget: 3 × 50 = 150 gradient evaluations per image. */
export const DEFAULT_CW_STEPS = 50;
export const DEFAULT_CW_LEARNING_RATE = 0.05;

const ADAM_BETA1 = 0.9;
const ADAM_BETA2 = 0.999;
const ADAM_EPSILON = 1e-8;
/** Carlini's upper bound on c before any success: while c stays below it, failures multiply c by 10. */
const CONST_UNBOUNDED = 1e10;
/** atanh(±1) is infinite: pixels at 0 or 1 start just inside the box (Carlini's 0.999999). */
const TANH_SHRINK = 0.999999;

/** Per image, rows of `a` where `cond` [N] holds and of `b` elsewhere (same shape [N, …]). */
function selectImages(cond: tf.Tensor1D, a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  // A bool condition broadcast over the image would need Tile on bool, which wasm lacks: the mask is
  // widened as floats and compared.
  const shape = [cond.shape[0], ...a.shape.slice(1).map(() => 1)];
  const mask = tf.greater(tf.add(tf.zerosLike(a), tf.reshape(tf.cast(cond, 'float32'), shape)), 0.5);
  return tf.where(mask, a, b);
}

/** The optimisation's state on device, replaced every iteration. */
type Iterate = {
  w: tf.Tensor4D;
  m: tf.Tensor4D;
  v: tf.Tensor4D;
  /** Per image: whether an iterate of this search step succeeded. */
  succeeded: tf.Tensor1D;
  bestL2: tf.Tensor1D;
  bestAdv: tf.Tensor4D;
  /** The image of w before the last update (the last iterate evaluated). */
  adv: tf.Tensor4D;
};

/** The binary search over c on the CPU: one read of the success flags per search step. */
function updateConsts(
  consts: Float64Array,
  lower: Float64Array,
  upper: Float64Array,
  succeeded: ArrayLike<number>,
): void {
  for (let i = 0; i < consts.length; i++) {
    if (succeeded[i]) {
      upper[i] = Math.min(upper[i], consts[i]);
      if (upper[i] < CONST_UNBOUNDED) consts[i] = (lower[i] + upper[i]) / 2;
    } else {
      lower[i] = Math.max(lower[i], consts[i]);
      consts[i] = upper[i] < CONST_UNBOUNDED ? (lower[i] + upper[i]) / 2 : consts[i] * 10;
    }
  }
}

export class CarliniWagnerL2 implements Attack {
  readonly name: AttackName = 'cw';
  readonly searchSteps: number;
  readonly initialConst: number;
  readonly confidence: number;

  constructor(config: CwConfig = {}) {
    this.searchSteps = config.searchSteps ?? 3;
    this.initialConst = config.initialConst ?? 1;
    this.confidence = config.confidence ?? 0;
    if (!(Number.isInteger(this.searchSteps) && this.searchSteps >= 1))
      throw new RangeError(`searchSteps: expected an integer ≥ 1, got ${config.searchSteps}`);
    if (!(this.initialConst > 0 && Number.isFinite(this.initialConst)))
      throw new RangeError(`initialConst: expected a finite number > 0, got ${config.initialConst}`);
    if (!(this.confidence >= 0 && Number.isFinite(this.confidence)))
      throw new RangeError(`confidence: expected a finite number ≥ 0, got ${config.confidence}`);
  }

  /**
   * options.steps: Adam iterations per search step (default 50); options.stepSize: Adam's learning
   * rate (default 0.05: at 0.01, 50 steps leave ~16 % of images unbroken with no budget limit); options.epsilon: the result is projected onto the L2 ball of that radius
   * (Infinity: unbounded).
   */
  run(target: AttackTarget, x: tf.Tensor4D, labels: Int32Array, options: AttackOptions): Promise<tf.Tensor4D> {
    // A call's κ (a high-confidence row of the evaluation) over the instance's.
    if (options.confidence !== undefined && options.confidence !== this.confidence) {
      const { confidence, ...rest } = options;
      return new CarliniWagnerL2({ searchSteps: this.searchSteps, initialConst: this.initialConst, confidence }).run(
        target,
        x,
        labels,
        rest,
      );
    }
    const call = checkCall(target, x, labels, options, false);
    const steps = options.steps ?? DEFAULT_CW_STEPS;
    const lr = options.stepSize ?? DEFAULT_CW_LEARNING_RATE;
    return inBatches(x, call.batchSize, (xb, first) => this.attackBatch(target, xb, call, first, steps, lr));
  }

  private async attackBatch(
    target: AttackTarget,
    x: tf.Tensor4D,
    call: CheckedCall,
    first: number,
    steps: number,
    lr: number,
  ): Promise<tf.Tensor4D> {
    const n = x.shape[0];
    const consts = new Float64Array(n).fill(this.initialConst);
    const lower = new Float64Array(n);
    const upper = new Float64Array(n).fill(CONST_UNBOUNDED);
    const onehot = classOneHot(call, first, n);
    const w0 = tf.tidy(() => tf.atanh(tf.mul(tf.sub(tf.mul(x, 2), 1), TANH_SHRINK))) as tf.Tensor4D;
    let best = { bestL2: tf.fill([n], Infinity) as tf.Tensor1D, bestAdv: tf.clone(x) };
    let last: tf.Tensor4D | undefined;
    try {
      for (let s = 0; s < this.searchSteps; s++) {
        const c = tf.tensor1d(Float32Array.from(consts));
        let it: Iterate | undefined;
        try {
          it = await this.searchStep(target, x, call, onehot, w0, c, best, steps, lr);
          tf.dispose([best.bestL2, best.bestAdv, last]);
          best = { bestL2: it.bestL2, bestAdv: it.bestAdv };
          last = it.adv;
          if (s + 1 < this.searchSteps) updateConsts(consts, lower, upper, await it.succeeded.data());
        } finally {
          c.dispose();
          if (it) tf.dispose([it.w, it.m, it.v, it.succeeded]);
        }
      }
      return tf.tidy(() => {
        const found = tf.less(best.bestL2, Infinity) as tf.Tensor1D;
        const adv = selectImages(found, best.bestAdv, last!) as tf.Tensor4D;
        return Number.isFinite(call.epsilon) ? projectL2(x, adv, call.epsilon) : adv;
      }) as tf.Tensor4D;
    } finally {
      tf.dispose([onehot, w0, best.bestL2, best.bestAdv]);
      last?.dispose();
    }
  }

  /** One search step: Adam from the clean image for `steps` iterations with constants c [N]. */
  private async searchStep(
    target: AttackTarget,
    x: tf.Tensor4D,
    call: CheckedCall,
    onehot: tf.Tensor2D,
    w0: tf.Tensor4D,
    c: tf.Tensor1D,
    best: { bestL2: tf.Tensor1D; bestAdv: tf.Tensor4D },
    steps: number,
    lr: number,
  ): Promise<Iterate> {
    const n = x.shape[0];
    let it: Iterate = {
      w: tf.clone(w0),
      m: tf.zerosLike(w0),
      v: tf.zerosLike(w0),
      succeeded: tf.zeros([n], 'bool'),
      bestL2: tf.clone(best.bestL2),
      bestAdv: tf.clone(best.bestAdv),
      adv: tf.clone(x),
    };
    try {
      for (let t = 1; t <= steps; t++) {
        const next = tf.tidy(() => this.iterate(target, x, call, onehot, c, it, t, lr));
        tf.dispose(Object.values(it));
        it = next;
        if (t < steps) await tf.nextFrame();
      }
      return it;
    } catch (err) {
      tf.dispose(Object.values(it));
      throw err;
    }
  }

  /** Loss, gradient and Adam update at iteration t; tracks the smallest successful iterate so far. */
  private iterate(
    target: AttackTarget,
    x: tf.Tensor4D,
    call: CheckedCall,
    onehot: tf.Tensor2D,
    c: tf.Tensor1D,
    it: Iterate,
    t: number,
    lr: number,
  ): Iterate {
    const kappa = this.confidence;
    // Quantities of the forward pass, kept out of tf.grad's inner tidy to track successes without a
    // second forward pass. Kept tensors escape every tidy: they are disposed explicitly once used.
    let seen: { adv: tf.Tensor4D; l2: tf.Tensor1D; margin: tf.Tensor1D } | undefined;
    const gradient = tf.grad((w: tf.Tensor) => {
      const adv = tf.mul(tf.add(tf.tanh(w), 1), 0.5) as tf.Tensor4D;
      const l2 = tf.sum(tf.square(tf.sub(adv, x)), [1, 2, 3]) as tf.Tensor1D;
      const logits = target.logits(adv);
      const { own, other } = ownAndBestOther(logits, onehot);
      const margin = (call.targeted ? tf.sub(other, own) : tf.sub(own, other)) as tf.Tensor1D;
      let loss = tf.add(l2, tf.mul(c, tf.maximum(margin, -kappa)));
      if (target.penalty) loss = tf.add(loss, tf.mul(target.penalty(adv), call.penaltyWeight));
      seen = { adv: tf.keep(adv), l2: tf.keep(l2), margin: tf.keep(margin) };
      return tf.sum(loss);
    });
    try {
      const g = gradient(it.w) as tf.Tensor4D;
      const { adv, l2, margin } = seen!;
      const m = tf.add(tf.mul(it.m, ADAM_BETA1), tf.mul(g, 1 - ADAM_BETA1)) as tf.Tensor4D;
      const v = tf.add(tf.mul(it.v, ADAM_BETA2), tf.mul(tf.square(g), 1 - ADAM_BETA2)) as tf.Tensor4D;
      const mHat = tf.div(m, 1 - ADAM_BETA1 ** t);
      const vHat = tf.div(v, 1 - ADAM_BETA2 ** t);
      const w = tf.sub(it.w, tf.mul(tf.div(mHat, tf.add(tf.sqrt(vHat), ADAM_EPSILON)), lr)) as tf.Tensor4D;
      // Success with margin κ: the true class trails (the target leads) by more than κ.
      const success = tf.less(margin, -kappa) as tf.Tensor1D;
      const improved = tf.logicalAnd(success, tf.less(l2, it.bestL2)) as tf.Tensor1D;
      return {
        w,
        m,
        v,
        succeeded: tf.logicalOr(it.succeeded, success) as tf.Tensor1D,
        bestL2: tf.where(improved, l2, it.bestL2) as tf.Tensor1D,
        bestAdv: selectImages(improved, adv, it.bestAdv) as tf.Tensor4D,
        adv: tf.clone(adv), // adv itself is disposed below
      };
    } finally {
      if (seen) tf.dispose([seen.adv, seen.l2, seen.margin]);
    }
  }
}

/** x + δ·min(1, ε/‖δ‖₂) per image: a convex combination of x and adv, so still in [0, 1]. */
function projectL2(x: tf.Tensor4D, adv: tf.Tensor4D, epsilon: number): tf.Tensor4D {
  const delta = tf.sub(adv, x);
  const norm = tf.sqrt(tf.sum(tf.square(delta), [1, 2, 3], true));
  const scale = tf.minimum(1, tf.div(epsilon, tf.maximum(norm, 1e-12)));
  return tf.add(x, tf.mul(delta, scale)) as tf.Tensor4D;
}
