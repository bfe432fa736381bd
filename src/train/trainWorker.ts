/** Worker-thread entry of a training replica (see replica.ts). Messages: step, apply, export. */
import { parentPort, workerData } from 'worker_threads';
import { initBackend } from '../engine/backends';
import { loadFashionMnist } from '../data/fashionMnist';
import { TrainingReplica } from './replica';
import type { TrainWorkerData, TrainWorkerRequest } from './trainer';

async function main(): Promise<void> {
  const data = workerData as TrainWorkerData;
  await initBackend(data.backend);
  const set = data.data ?? loadFashionMnist('train', data.dataDir, data.limit);
  const replica = new TrainingReplica(set, data.replica);
  const port = parentPort!;
  // Requests are handled one at a time, in order (a step's reads are asynchronous).
  let queue: Promise<void> = Promise.resolve();
  port.on('message', (msg: TrainWorkerRequest) => {
    queue = queue.then(() => handle(msg));
  });
  const handle = async (msg: TrainWorkerRequest): Promise<void> => {
    try {
      if (msg.type === 'apply') {
        replica.applyGradients(msg.grads);
        port.postMessage({ type: 'applied' });
      } else if (msg.type === 'step') {
        if (msg.learningRate !== undefined) replica.setLearningRate(msg.learningRate);
        const r = await replica.computeGradients(msg.indices, msg.dropoutSeed);
        // The gradient arrays are copies read from the backend: safe to transfer.
        port.postMessage({ type: 'grads', result: r }, [...new Set(r.grads.map((g) => g.buffer as ArrayBuffer))]);
      } else if (msg.type === 'export') {
        port.postMessage({ type: 'weights', weights: await replica.exportWeights() });
      }
    } catch (err) {
      port.postMessage({ type: 'error', message: (err as Error).stack ?? String(err) });
    }
  };
  port.postMessage({ type: 'ready' });
}

main().catch((err) => {
  parentPort?.postMessage({ type: 'error', message: (err as Error).stack ?? String(err) });
});
