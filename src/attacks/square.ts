/**
 * Square attack, L∞: Andriushchenko, Croce, Flammarion, Hein, "Square Attack: a query-efficient
 * black-box adversarial attack via random search", ECCV 2020. Gradient-free: random squares of ±ε
 * (changes of up to 2ε) are kept when they lower the logit margin; the square shrinks on the paper's
 * schedule. Images stop being queried once they are adversarial.
 */
import * as tf from '@tensorflow/tfjs';
import { Attack, AttackName, AttackOptions, AttackTarget } from './attack';
import { checkCall, CheckedCall, imageRandom, inBatches } from './target';

export interface SquareConfig {
  /** Initial fraction of the image the square covers (default 0.3, the paper's choice for MNIST-sized inputs). */
  readonly pInit?: number;
}

export const DEFAULT_SQUARE_QUERIES = 500;

/** Iterations (out of 10 000, rescaled to the query budget) after which the square's area halves. */
const HALVINGS = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000];

/** The paper's p_selection: the fraction of pixels the square covers at iteration `iter` of `queries`. */
export function squareFraction(pInit: number, iter: number, queries: number): number {
  const scaled = Math.floor((iter / queries) * 10000);
  let halvings = 0;
  while (halvings < HALVINGS.length && scaled > HALVINGS[halvings]) halvings++;
  return pInit / 2 ** halvings;
}

/** Per image: margin (< 0 when adversarial) and objective = margin + w·penalty (what is minimised). */
interface Scores {
  margin: Float32Array;
  objective: Float32Array;
}

export class SquareAttack implements Attack {
  readonly name: AttackName = 'square';
  readonly pInit: number;

  constructor(config: SquareConfig = {}) {
    this.pInit = config.pInit ?? 0.3;
    if (!(this.pInit > 0 && this.pInit <= 1))
      throw new RangeError(`pInit: expected a fraction in (0, 1], got ${config.pInit}`);
  }

  /** options.steps: the query budget per image (default 500), the initial query included. */
  run(target: AttackTarget, x: tf.Tensor4D, labels: Int32Array, options: AttackOptions): Promise<tf.Tensor4D> {
    const call = checkCall(target, x, labels, options);
    if (call.epsilon === 0) return Promise.resolve(tf.clone(x));
    const queries = options.steps ?? DEFAULT_SQUARE_QUERIES;
    return inBatches(x, call.batchSize, (xb, first) => this.attackBatch(target, xb, call, first, queries));
  }

  private async attackBatch(
    target: AttackTarget,
    x: tf.Tensor4D,
    call: CheckedCall,
    first: number,
    queries: number,
  ): Promise<tf.Tensor4D> {
    const [n, h, w, c] = x.shape;
    const size = h * w * c;
    const eps = call.epsilon;
    const clean = (await x.data()) as Float32Array;
    const random = Array.from({ length: n }, (_, i) => imageRandom(call.seed, first + i));
    const best = new Float32Array(n * size);
    // Vertical stripes of ±ε (one sign per column and channel): the paper's initialisation.
    for (let i = 0; i < n; i++) {
      for (let col = 0; col < w; col++) {
        for (let ch = 0; ch < c; ch++) {
          const d = random[i]() < 0.5 ? -eps : eps;
          for (let row = 0; row < h; row++) {
            const k = i * size + (row * w + col) * c + ch;
            best[k] = Math.min(1, Math.max(0, clean[k] + d));
          }
        }
      }
    }
    const scores = await this.score(
      target,
      best,
      Int32Array.from({ length: n }, (_, i) => i),
      x.shape,
      call,
      first,
    );
    const candidate = new Float32Array(n * size);
    for (let iter = 0; iter < queries - 1; iter++) {
      const active = Int32Array.from(
        Array.from({ length: n }, (_, i) => i).filter((i) => !(scores.margin[i] < 0 && scores.objective[i] < 0)),
      );
      if (active.length === 0) break;
      const side = Math.min(
        Math.max(Math.round(Math.sqrt(squareFraction(this.pInit, iter, queries) * h * w)), 1),
        h - 1,
      );
      for (const i of active) this.propose(clean, best, candidate, i, random[i], [h, w, c], side, eps);
      const trial = await this.score(target, candidate, active, x.shape, call, first);
      active.forEach((i, j) => {
        if (trial.objective[j] < scores.objective[i]) {
          scores.objective[i] = trial.objective[j];
          scores.margin[i] = trial.margin[j];
          best.set(candidate.subarray(i * size, (i + 1) * size), i * size);
        }
      });
    }
    return tf.tensor4d(best, x.shape);
  }

  /**
   * Writes into `candidate` image i's best so far with one random square set to a fresh ±ε per
   * channel, drawn again while it would leave the image unchanged (a square already at that value).
   */
  private propose(
    clean: Float32Array,
    best: Float32Array,
    candidate: Float32Array,
    i: number,
    random: () => number,
    [h, w, c]: readonly number[],
    side: number,
    eps: number,
  ): void {
    const size = h * w * c;
    const base = i * size;
    candidate.set(best.subarray(base, base + size), base);
    const top = Math.floor(random() * (h - side));
    const left = Math.floor(random() * (w - side));
    const values = new Float32Array(c);
    // Two values per channel: a few draws find a changing one unless ε is below float resolution.
    for (let tries = 0; tries < 100; tries++) {
      for (let ch = 0; ch < c; ch++) values[ch] = random() < 0.5 ? -eps : eps;
      let changed = false;
      for (let row = top; row < top + side; row++) {
        for (let col = left; col < left + side; col++) {
          for (let ch = 0; ch < c; ch++) {
            const k = base + (row * w + col) * c + ch;
            candidate[k] = Math.min(1, Math.max(0, clean[k] + values[ch]));
            if (Math.abs(candidate[k] - best[k]) >= 1e-7) changed = true;
          }
        }
      }
      if (changed) return;
    }
  }

  /** Queries the target on images `which` (rows of `pixels`): one forward pass over them. */
  private async score(
    target: AttackTarget,
    pixels: Float32Array,
    which: Int32Array,
    [, h, w, c]: readonly number[],
    call: CheckedCall,
    first: number,
  ): Promise<Scores> {
    const size = h * w * c;
    const m = which.length;
    const batch = new Float32Array(m * size);
    which.forEach((i, j) => batch.set(pixels.subarray(i * size, (i + 1) * size), j * size));
    const [logits, penalty] = tf.tidy(() => {
      const xt = tf.tensor4d(batch, [m, h, w, c]);
      return [target.logits(xt), target.penalty ? target.penalty(xt) : tf.zeros([m])];
    });
    try {
      const [z, pen] = (await Promise.all([logits.data(), penalty.data()])) as Float32Array[];
      const k = call.numClasses;
      const margin = new Float32Array(m);
      const objective = new Float32Array(m);
      which.forEach((i, j) => {
        const cls = call.classes[first + i];
        let other = -Infinity;
        for (let q = 0; q < k; q++) if (q !== cls) other = Math.max(other, z[j * k + q]);
        // Untargeted: the true class's lead; targeted: the target's shortfall. Adversarial when < 0.
        margin[j] = call.targeted ? other - z[j * k + cls] : z[j * k + cls] - other;
        objective[j] = margin[j] + call.penaltyWeight * pen[j];
      });
      return { margin, objective };
    } finally {
      tf.dispose([logits, penalty]);
    }
  }
}
