/**
 * Worker-thread entry of a training replica (see replica.ts). Messages: peers, step, apply, export.
 * A step's gradient goes into this worker's shared slot; 'apply' averages every replica's slot.
 */
import { parentPort, workerData } from 'worker_threads';
import { initBackend } from '../engine/backends';
import { loadFashionMnist } from '../data/fashionMnist';
import { averageGradients, ShardResult, TrainingReplica } from './replica';
import type { TrainWorkerData, TrainWorkerRequest } from './trainer';

async function main(): Promise<void> {
  const data = workerData as TrainWorkerData;
  await initBackend(data.backend);
  const set = data.data ?? loadFashionMnist('train', data.dataDir, data.limit);
  const replica = new TrainingReplica(set, data.replica, data.perturbations);
  const port = parentPort!;
  const sizes = replica.model.trainableWeights.map((w) => w.read().size);
  const slot = new SharedArrayBuffer(sizes.reduce((a, b) => a + b, 0) * Float32Array.BYTES_PER_ELEMENT);
  /** One Float32Array view per trainable weight, in model order. */
  const viewsOf = (buffer: SharedArrayBuffer): Float32Array[] => {
    let offset = 0;
    return sizes.map((n) => {
      const view = new Float32Array(buffer, offset * Float32Array.BYTES_PER_ELEMENT, n);
      offset += n;
      return view;
    });
  };
  const own = viewsOf(slot);
  let peers: Float32Array[][] = [];
  // Requests are handled one at a time, in order (a step's reads are asynchronous).
  let queue: Promise<void> = Promise.resolve();
  port.on('message', (msg: TrainWorkerRequest) => {
    queue = queue.then(() => handle(msg));
  });
  const handle = async (msg: TrainWorkerRequest): Promise<void> => {
    try {
      if (msg.type === 'peers') {
        peers = msg.slots.map(viewsOf);
        port.postMessage({ type: 'peers' });
      } else if (msg.type === 'apply') {
        // The main thread sends 'apply' after every worker's step reply, and each reply was posted
        // after its slot was written: the slots hold this step's gradients.
        const shards: ShardResult[] = peers.map((grads, i) => ({ grads, count: msg.counts[i], loss: 0, correct: 0 }));
        replica.applyGradients(averageGradients(shards));
        port.postMessage({ type: 'applied' });
      } else if (msg.type === 'step') {
        if (msg.learningRate !== undefined) replica.setLearningRate(msg.learningRate);
        const r = await replica.computeGradients(msg.indices, msg.dropoutSeed);
        r.grads.forEach((g, k) => own[k].set(g));
        port.postMessage({ type: 'grads', result: { ...r, grads: [] } });
      } else if (msg.type === 'export') {
        port.postMessage({ type: 'weights', weights: await replica.exportWeights(msg.kind) });
      }
    } catch (err) {
      port.postMessage({ type: 'error', message: (err as Error).stack ?? String(err) });
    }
  };
  port.postMessage({ type: 'ready', slot });
}

main().catch((err) => {
  parentPort?.postMessage({ type: 'error', message: (err as Error).stack ?? String(err) });
});
