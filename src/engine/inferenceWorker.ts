/**
 * Worker-thread entry of the inference pool: its own backend and model, one batch at a time.
 * Requests: {type:'run', id, pixels, count} → {type:'result', id, output}; {type:'memory'} →
 * live tensor count (leak tests); {type:'crash'} exits at once (fault-injection tests only), as does
 * a batch holding one of the fault patterns (./faultInjection). Ready and result replies carry
 * tf.memory()'s tensor count and bytes (cheap counters), for the pool's tensorStats().
 */
import * as tf from '@tensorflow/tfjs';
import { parentPort, workerData } from 'worker_threads';
import { initBackend } from './backends';
import { faultIn } from './faultInjection';
import { InferenceModel } from './model';
import { storedModelFlops } from './modelCost';
import type { InferenceWorkerData, WorkerReply, WorkerRequest } from './pool';

async function main(): Promise<void> {
  const data = workerData as InferenceWorkerData;
  const port = parentPort!;
  const backend = await initBackend(data.backend);
  const model = await InferenceModel.load(data.modelDir, data.activationLayers);
  // Warm-up: the first call compiles kernels and sizes buffers; keep it out of request latency.
  await model.runBatch(new Float32Array(model.imageSize), 1);
  // Batches are handled one at a time, in arrival order: the pool sends a worker one batch at once.
  let queue: Promise<void> = Promise.resolve();
  port.on('message', (msg: WorkerRequest) => {
    queue = queue.then(() => handle(msg));
  });
  const handle = async (msg: WorkerRequest): Promise<void> => {
    if (msg.type === 'crash') {
      if (data.faultInjection) process.exit(70);
      return;
    }
    if (msg.type === 'memory') {
      port.postMessage({ type: 'memory', id: msg.id, numTensors: tf.memory().numTensors } satisfies WorkerReply);
      return;
    }
    if (msg.type === 'explain') {
      try {
        const explanation = await model.explain(msg.pixels, msg.count, msg.classes, msg.layer);
        port.postMessage({ type: 'explained', id: msg.id, explanation, tensors: tensorStats() } satisfies WorkerReply, [
          explanation.maps.buffer as ArrayBuffer,
        ]);
      } catch (err) {
        port.postMessage({ type: 'error', id: msg.id, message: (err as Error).message } satisfies WorkerReply);
      }
      return;
    }
    if (data.faultInjection) {
      const fault = faultIn(msg.pixels, msg.count, model.imageSize);
      if (fault === 'crashAlways' || (fault === 'crashOnce' && msg.attempt === 1)) process.exit(70);
    }
    try {
      const output = await model.runBatch(msg.pixels, msg.count, data.extras);
      // Reads are copies out of the backend, safe to transfer; a tensor read twice may share a buffer.
      const buffers = new Set(
        [
          output.probs,
          output.logits,
          ...Object.values(output.activations).map((a) => a.values),
          output.hfShare,
          output.lowPassProbs,
          output.lowPassPixels,
        ].flatMap((a) => (a ? [a.buffer as ArrayBuffer] : [])),
      );
      port.postMessage({ type: 'result', id: msg.id, output, tensors: tensorStats() } satisfies WorkerReply, [
        ...buffers,
      ]);
    } catch (err) {
      port.postMessage({ type: 'error', id: msg.id, message: (err as Error).message } satisfies WorkerReply);
    }
  };
  port.postMessage({
    type: 'ready',
    backend: backend.name,
    gpu: backend.gpu,
    adapter: backend.adapter,
    sha256: model.stored.sha256,
    flops: storedModelFlops(model.stored),
    tensors: tensorStats(),
  } satisfies WorkerReply);
}

function tensorStats(): { numTensors: number; numBytes: number } {
  const m = tf.memory();
  return { numTensors: m.numTensors, numBytes: m.numBytes };
}

main().catch((err) => {
  parentPort?.postMessage({ type: 'fatal', message: (err as Error).message } satisfies WorkerReply);
});
