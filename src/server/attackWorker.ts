/**
 * Worker-thread entry of the attack runner: attacks need input gradients, many forward and backward
 * passes per image, so they run here, on a thread of their own, and never hold the event loop that
 * serves requests and feeds the inference workers.
 */
import * as tf from '@tensorflow/tfjs';
import { parentPort, workerData } from 'worker_threads';
import { getAttack } from '../attacks/registry';
import { modelTarget } from '../attacks/target';
import { initBackend } from '../engine/backends';
import { InferenceModel } from '../engine/model';
import type { AttackJob, AttackWorkerData, AttackWorkerReply } from './attackRunner';

async function main(): Promise<void> {
  const data = workerData as AttackWorkerData;
  const port = parentPort!;
  await initBackend(data.backend);
  const model = await InferenceModel.load(data.modelDir);
  const target = modelTarget(model);
  port.on('message', (job: AttackJob) => {
    void run(job).then(
      (pixels) =>
        port.postMessage({ type: 'result', pixels } satisfies AttackWorkerReply, [pixels.buffer as ArrayBuffer]),
      (err: Error) => port.postMessage({ type: 'error', message: err.message } satisfies AttackWorkerReply),
    );
  });
  const run = async (job: AttackJob): Promise<Float32Array> => {
    const x = tf.tensor4d(job.pixels, [1, ...model.inputShape]);
    try {
      const adv = await getAttack(job.method).run(target, x, Int32Array.of(job.label), {
        epsilon: job.epsilon,
        targets: job.targetClass === undefined ? undefined : Int32Array.of(job.targetClass),
        steps: job.steps,
        seed: job.seed,
      });
      try {
        return Float32Array.from((await adv.data()) as Float32Array);
      } finally {
        adv.dispose();
      }
    } finally {
      x.dispose();
    }
  };
  port.postMessage({ type: 'ready' } satisfies AttackWorkerReply);
}

main().catch((err: Error) => {
  parentPort?.postMessage({ type: 'fatal', message: err.message } satisfies AttackWorkerReply);
});
