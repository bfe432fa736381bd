/**
 * Accuracy under attack of a trained serving graph: what `train --adversarial` reports and records
 * in the model card. PGD-L∞ with a random start (Madry et al. 2018), ε and steps as asked, against
 * the logits layer, on the first `count` test images.
 *
 * The images are attacked `chunk` at a time (PGD keeps the batch, its gradients and its random start
 * in memory at once, and all 10 000 test images in one batch do not fit in wasm's 4 GiB), and each
 * chunk's figure is kept: on the robust model they ranged 71.4–75.1 % over the ten chunks of the test
 * set, so a figure on one chunk says less than its ±1.4 % binomial error suggests.
 */
import * as tf from '@tensorflow/tfjs';
import { ProjectedGradientDescent } from '../attacks/pgd';
import { ImageSet } from '../data/fashionMnist';
import { clopperPearson, RateInterval } from '../calibration/conformal';

export interface RobustChunk {
  /** Index of the chunk's first test image. */
  readonly from: number;
  readonly images: number;
  readonly clean: number;
  readonly underAttack: number;
}

export interface RobustAccuracy {
  readonly images: number;
  readonly epsilon: number;
  readonly steps: number;
  /** Clean accuracy on the same images. */
  readonly clean: number;
  /** Accuracy on PGD's adversarial versions of them. */
  readonly underAttack: number;
  /** Exact 95 % interval of `underAttack` (the images as a sample of unseen ones). */
  readonly underAttackInterval: RateInterval;
  /** The figures of each chunk, in test-set order. */
  readonly chunks: RobustChunk[];
  readonly seconds: number;
}

export const ROBUST_CHUNK = 1000;

export async function robustAccuracy(
  model: tf.LayersModel,
  set: ImageSet,
  opts: { count: number; epsilon: number; steps: number; seed?: number; logitsLayer?: string; chunk?: number },
): Promise<RobustAccuracy> {
  const start = Date.now();
  const n = Math.min(opts.count, set.count);
  const chunk = Math.max(1, opts.chunk ?? ROBUST_CHUNK);
  const size = set.height * set.width;
  const logitsModel = tf.model({ inputs: model.inputs, outputs: model.getLayer(opts.logitsLayer ?? 'logits').output });
  const target = { logits: (xa: tf.Tensor4D) => logitsModel.apply(xa) as tf.Tensor2D };
  const attack = new ProjectedGradientDescent({ randomStart: true });
  const correctOf = async (images: tf.Tensor4D, labels: Int32Array): Promise<number> => {
    const pred = tf.tidy(() => tf.argMax(logitsModel.predict(images, { batchSize: 256 }) as tf.Tensor, 1));
    const p = await pred.data();
    pred.dispose();
    let c = 0;
    for (let i = 0; i < labels.length; i++) if (p[i] === labels[i]) c++;
    return c;
  };
  const chunks: RobustChunk[] = [];
  let clean = 0;
  let kept = 0;
  for (let from = 0; from < n; from += chunk) {
    const m = Math.min(chunk, n - from);
    const labels = Int32Array.from(set.labels.subarray(from, from + m));
    const x = tf.tensor4d(set.pixels.subarray(from * size, (from + m) * size), [m, set.height, set.width, 1]);
    let adversarial: tf.Tensor4D | undefined;
    try {
      // Each chunk its own random start: seed, seed + 1, …; the first chunk's is the one a
      // single-chunk run has always used, so figures on the first 1 000 images stay comparable.
      adversarial = await attack.run(target, x, labels, {
        epsilon: opts.epsilon,
        steps: opts.steps,
        seed: (opts.seed ?? 1) + from / chunk,
      });
      const c = await correctOf(x, labels);
      const k = await correctOf(adversarial, labels);
      clean += c;
      kept += k;
      chunks.push({ from, images: m, clean: c / m, underAttack: k / m });
    } finally {
      tf.dispose([x, ...(adversarial ? [adversarial] : [])]);
    }
  }
  return {
    images: n,
    epsilon: opts.epsilon,
    steps: opts.steps,
    clean: clean / n,
    underAttack: kept / n,
    underAttackInterval: clopperPearson(kept, n),
    chunks,
    seconds: (Date.now() - start) / 1000,
  };
}

/** "72.09–73.84 %": the exact 95 % interval of the accuracy under attack (the CLI's and the model card's words). */
export function robustIntervalText(r: RobustAccuracy): string {
  return `${(r.underAttackInterval.low * 100).toFixed(2)}–${(r.underAttackInterval.high * 100).toFixed(2)} %`;
}

/** "75.1, 71.4, …, 73.9 %": each chunk's accuracy under attack, in test-set order. */
export function robustChunksText(r: RobustAccuracy): string {
  return `${r.chunks.map((c) => (c.underAttack * 100).toFixed(1)).join(', ')} %`;
}
