/** Worker-thread entry of a training replica (see replica.ts). Messages: step, apply, export. */
import { parentPort, workerData } from 'worker_threads';
import { initBackend } from '../engine/backends';
import { loadFashionMnist } from '../data/fashionMnist';
import { TrainingReplica } from './replica';
import type { TrainWorkerData, TrainWorkerRequest } from './trainer';

async function main(): Promise<void> {
  const data = workerData as TrainWorkerData;
  await initBackend(data.backend);
  const set = loadFashionMnist('train', data.dataDir, data.limit);
  const replica = new TrainingReplica(set, data.model, data.learningRate, data.augment);
  const port = parentPort!;
  port.on('message', (msg: TrainWorkerRequest) => {
    try {
      if (msg.type === 'apply') {
        replica.applyGradients(msg.grads);
        port.postMessage({ type: 'applied' });
      } else if (msg.type === 'step') {
        if (msg.learningRate !== undefined) replica.setLearningRate(msg.learningRate);
        const r = replica.computeGradients(msg.indices, msg.dropoutSeed);
        port.postMessage(
          { type: 'grads', result: r },
          r.grads.map((g) => g.buffer as ArrayBuffer),
        );
      } else if (msg.type === 'export') {
        port.postMessage({ type: 'weights', weights: replica.exportWeights() });
      }
    } catch (err) {
      port.postMessage({ type: 'error', message: (err as Error).stack ?? String(err) });
    }
  });
  port.postMessage({ type: 'ready' });
}

main().catch((err) => {
  parentPort?.postMessage({ type: 'error', message: (err as Error).stack ?? String(err) });
});
