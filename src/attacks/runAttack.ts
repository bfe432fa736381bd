/** Runs an attack over a large image set in batches, from and to plain pixel arrays. */
import * as tf from '@tensorflow/tfjs';
import type { Attack, AttackOptions, AttackTarget } from './attack';

export const ATTACK_BATCH = 64;

export async function attackInBatches(
  attack: Attack,
  target: AttackTarget,
  pixels: Float32Array,
  labels: Int32Array,
  shape: readonly [number, number, number],
  options: AttackOptions,
  onBatch?: (done: number) => void,
): Promise<Float32Array> {
  const [h, w, c] = shape;
  const size = h * w * c;
  const count = labels.length;
  const out = new Float32Array(count * size);
  for (let start = 0; start < count; start += ATTACK_BATCH) {
    const n = Math.min(ATTACK_BATCH, count - start);
    const x = tf.tensor4d(pixels.subarray(start * size, (start + n) * size), [n, h, w, c]);
    const targets = options.targets?.subarray(start, start + n);
    const guides = options.guides?.subarray(start * size, (start + n) * size);
    // A different seed per batch: the same seed would repeat one random start on every batch.
    const adv = await attack.run(target, x, labels.subarray(start, start + n), {
      ...options,
      targets,
      guides,
      seed: (options.seed ?? 0) + start,
    });
    out.set((await adv.data()) as Float32Array, start * size);
    tf.dispose([x, adv]);
    onBatch?.(start + n);
  }
  return out;
}
