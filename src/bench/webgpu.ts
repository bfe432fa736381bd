/** WebGPU measurements shared by bench:engine and the GPU check (scripts/gpu-check.sh). */
import * as tf from '@tensorflow/tfjs';
import { InferenceModel } from '../engine/model';
import { AdapterDescription, registerWebGpuBackend } from '../engine/webgpu';
import { randomImages, rate } from './measure';

export interface WebGpuFigures {
  readonly adapter: AdapterDescription;
  /** Forward images/s keyed by batch size. */
  readonly forward: Record<number, number>;
  /** Input-gradient images/s keyed by batch size. */
  readonly inputGradient: Record<number, number>;
}

/**
 * Registers webgpu (software adapters only when `allowSoftware`), measures the model on it, and
 * restores the previous backend. Throws when no acceptable adapter starts.
 */
export async function measureWebGpu(
  modelDir: string,
  forwardBatches: number[],
  gradientBatches: number[],
  seconds: number,
  allowSoftware: boolean,
): Promise<WebGpuFigures> {
  const previous = tf.getBackend();
  const adapter = await registerWebGpuBackend(allowSoftware);
  await tf.setBackend('webgpu');
  const model = await InferenceModel.load(modelDir);
  try {
    const [h, w, c] = model.inputShape;
    const forward: Record<number, number> = {};
    for (const b of forwardBatches) {
      const px = randomImages(b, model.imageSize);
      forward[b] = await rate(
        b,
        async () => {
          await model.runBatch(px, b);
        },
        seconds,
      );
    }
    const inputGradient: Record<number, number> = {};
    for (const b of gradientBatches) {
      const x = tf.tensor4d(randomImages(b, model.imageSize), [b, h, w, c]);
      const labels = new Int32Array(b).map((_, i) => i % model.metadata.labels.length);
      inputGradient[b] = await rate(
        b,
        async () => {
          const g = model.inputGradient(x, labels);
          await g.data();
          g.dispose();
        },
        seconds,
      );
      x.dispose();
    }
    return { adapter, forward, inputGradient };
  } finally {
    model.dispose();
    await tf.setBackend(previous);
  }
}
