/**
 * Accuracy under attack of a freshly trained serving graph: what `train --adversarial` reports and
 * records in the model card. PGD-L∞ with a random start (Madry et al. 2018), ε and steps as asked,
 * against the logits layer, on the first `count` test images.
 */
import * as tf from '@tensorflow/tfjs';
import { ProjectedGradientDescent } from '../attacks/pgd';
import { ImageSet } from '../data/fashionMnist';

export interface RobustAccuracy {
  readonly images: number;
  readonly epsilon: number;
  readonly steps: number;
  /** Clean accuracy on the same images. */
  readonly clean: number;
  /** Accuracy on PGD's adversarial versions of them. */
  readonly underAttack: number;
  readonly seconds: number;
}

export async function robustAccuracy(
  model: tf.LayersModel,
  set: ImageSet,
  opts: { count: number; epsilon: number; steps: number; seed?: number; logitsLayer?: string },
): Promise<RobustAccuracy> {
  const start = Date.now();
  const n = Math.min(opts.count, set.count);
  const size = set.height * set.width;
  const logitsModel = tf.model({ inputs: model.inputs, outputs: model.getLayer(opts.logitsLayer ?? 'logits').output });
  const labels = Int32Array.from(set.labels.subarray(0, n));
  const x = tf.tensor4d(set.pixels.subarray(0, n * size), [n, set.height, set.width, 1]);
  const target = { logits: (xa: tf.Tensor4D) => logitsModel.apply(xa) as tf.Tensor2D };
  const adversarial = await new ProjectedGradientDescent({ randomStart: true }).run(target, x, labels, {
    epsilon: opts.epsilon,
    steps: opts.steps,
    seed: opts.seed ?? 1,
  });
  const correct = async (images: tf.Tensor4D): Promise<number> => {
    const pred = tf.tidy(() => tf.argMax(logitsModel.predict(images, { batchSize: 256 }) as tf.Tensor, 1));
    const p = await pred.data();
    pred.dispose();
    let c = 0;
    for (let i = 0; i < n; i++) if (p[i] === labels[i]) c++;
    return c / n;
  };
  try {
    return {
      images: n,
      epsilon: opts.epsilon,
      steps: opts.steps,
      clean: await correct(x),
      underAttack: await correct(adversarial),
      seconds: (Date.now() - start) / 1000,
    };
  } finally {
    tf.dispose([x, adversarial]);
  }
}
