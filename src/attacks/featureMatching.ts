/**
 * Feature matching: Sabour, Cao, Faghri & Fleet, "Adversarial Manipulation of Deep Representations",
 * ICLR 2016. Instead of pushing the prediction, it pulls the image's internal representation towards
 * that of a *guide*, a clean image of another class, within an L∞ ball:
 *   minimise Σ_l ‖φ_l(x′) − φ_l(g)‖² / ‖φ_l(g)‖²
 * over the layers the detectors read (each layer relative to the guide's own norm, so that no layer's
 * scale dominates). An image whose every layer looks like a clean image of the guide's class is what
 * per-layer detectors (class expectations, Mahalanobis, density) cannot tell from one; the measure of
 * this attack is how many of its images slip past them.
 *
 * Sign-gradient descent (Sabour et al. used L-BFGS in a box; sign steps are the L∞ ball's steepest
 * descent) with the step size halved every quarter of the steps. With `lowFrequencyRadius`, the
 * perturbation is low-passed every step (ideal mask, cycles/pixel) before the ball's projection, so
 * it carries little energy above the high-frequency sieve's cut-off.
 */
import * as tf from '@tensorflow/tfjs';
import { lowPassImages } from '../engine/spectra';
import { Attack, AttackName, AttackOptions, AttackTarget } from './attack';
import { checkCall, inBatches } from './target';

export const DEFAULT_FEATURE_MATCHING_STEPS = 100;

export interface FeatureMatchingConfig {
  /** Layers matched (default: every layer the target's features give). */
  readonly layers?: readonly string[];
  /** Keep the perturbation below this radius (cycles/pixel, as the low-pass defense's): the low-frequency variant. */
  readonly lowFrequencyRadius?: number;
}

export class FeatureMatching implements Attack {
  readonly name = 'feature-matching' as AttackName;

  constructor(readonly config: FeatureMatchingConfig = {}) {
    const r = config.lowFrequencyRadius;
    if (r !== undefined && !(r > 0 && r <= 0.75))
      throw new RangeError(`lowFrequencyRadius: expected (0, 0.75], got ${r}`);
  }

  async run(target: AttackTarget, x: tf.Tensor4D, labels: Int32Array, options: AttackOptions): Promise<tf.Tensor4D> {
    const features = target.features?.bind(target);
    if (!features) throw new TypeError('feature matching needs a target that gives its features (modelTarget does)');
    const size = x.shape[1] * x.shape[2] * x.shape[3];
    if (!options.guides || options.guides.length !== x.shape[0] * size) {
      throw new RangeError(
        `guides: expected one guide image per attacked image (${x.shape[0] * size} values), got ${options.guides?.length ?? 'none'}`,
      );
    }
    const call = checkCall(target, x, labels, options);
    const steps = options.steps ?? DEFAULT_FEATURE_MATCHING_STEPS;
    const stepSize = options.stepSize ?? call.epsilon / 4;
    const guides = options.guides;
    const eps = call.epsilon;
    const radius = this.config.lowFrequencyRadius;
    return inBatches(x, call.batchSize, async (xb, first) => {
      const n = xb.shape[0];
      const guide = tf.tensor4d(guides.subarray(first * size, (first + n) * size), xb.shape);
      const wanted = tf.tidy(() => {
        const all = features(guide);
        const layers = this.config.layers ?? Object.keys(all);
        const missing = layers.filter((l) => !(l in all));
        if (missing.length) throw new RangeError(`layers: the target has no features '${missing.join("', '")}'`);
        return layers.map((l) => {
          const f = all[l];
          return { layer: l, f, norm: tf.add(tf.sum(tf.square(f), 1), 1e-12) };
        });
      });
      guide.dispose();
      const loss = (xa: tf.Tensor) => {
        const got = features(xa as tf.Tensor4D);
        const perImage = wanted.map((w) => tf.div(tf.sum(tf.square(tf.sub(got[w.layer], w.f)), 1), w.norm));
        return tf.sum(tf.addN(perImage));
      };
      const gradient = tf.grad(loss);
      let xa: tf.Tensor4D = tf.clone(xb);
      try {
        for (let step = 0; step < steps; step++) {
          const halved = stepSize * 0.5 ** Math.floor((4 * step) / steps);
          const next = tf.tidy(() => {
            let delta = tf.sub(tf.sub(xa, tf.mul(tf.sign(gradient(xa)), halved)), xb) as tf.Tensor4D;
            if (radius !== undefined) delta = lowPassImages(delta, radius, 'ideal');
            return tf.clipByValue(tf.add(xb, tf.clipByValue(delta, -eps, eps)), 0, 1) as tf.Tensor4D;
          });
          xa.dispose();
          xa = next;
          if (options.trace) {
            const value = tf.tidy(() => loss(xa));
            options.trace(step, (await value.data())[0] / n, n);
            value.dispose();
          }
          if (step + 1 < steps) await tf.nextFrame();
        }
        return xa;
      } catch (err) {
        xa.dispose();
        throw err;
      } finally {
        tf.dispose(wanted.flatMap((w) => [w.f, w.norm]));
      }
    });
  }
}
