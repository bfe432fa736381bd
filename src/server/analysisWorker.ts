/**
 * Worker-thread entry of the analysis runner (src/server/analysisRunner.ts): `spectrum`'s DFT and
 * plot, and `defend`'s low-pass at a client's radius, on a thread of their own with the plain-JS
 * tfjs backend, so that the event loop serving every request never runs them.
 */
import { parentPort } from 'worker_threads';
import { initBackend } from '../engine/backends';
import { lowPass, spectrumOf } from './analysis';
import type { AnalysisJob, AnalysisReply } from './analysisRunner';

async function main(): Promise<void> {
  const port = parentPort!;
  await initBackend('cpu');
  port.on('message', (job: AnalysisJob) => {
    void run(job).then(
      (reply) => {
        const transfer = reply.kind === 'lowPass' ? reply.images.map((p) => p.buffer as ArrayBuffer) : [];
        port.postMessage(reply, transfer);
      },
      (err: Error) => port.postMessage({ id: job.id, kind: 'error', message: err.message } satisfies AnalysisReply),
    );
  });
  port.postMessage({ id: 0, kind: 'ready' } satisfies AnalysisReply);
}

async function run(job: AnalysisJob): Promise<AnalysisReply> {
  if (job.kind === 'spectrum')
    return { id: job.id, kind: 'spectrum', result: await spectrumOf(job.pixels, job.shape, job.cutoff) };
  return { id: job.id, kind: 'lowPass', images: lowPass(job.images, job.shape, job.radius, job.filter) };
}

main().catch((err: Error) => {
  parentPort!.postMessage({ id: 0, kind: 'error', message: `analysis worker failed to start: ${err.message}` });
  process.exit(1);
});
