/**
 * Removing spooled uploads once no unfinished job needs them. A job gives its files back when it
 * completes (its consumer), when it is cancelled (the replica that cancels it), or, if it expired
 * or its process stopped first, at the next sweep: every consumer sweeps on start and then every
 * SWEEP_INTERVAL_MS. Releasing is idempotent (src/jobs/jobStore.ts), so several processes sweeping
 * at once remove each file once. A failure here is logged, never a job's or a request's failure:
 * the next sweep tries again.
 */
import { logger } from '../util/logger';
import type { JobStore } from './jobStore';
import type { Spool } from './spool';

/** How often a consumer looks for finished jobs still holding spooled files. */
export const SWEEP_INTERVAL_MS = 60_000;

/** Releases one finished job's files and removes those no other unfinished job holds; returns how many went. */
export async function freeSpooledFiles(store: JobStore, spool: Spool, jobId: string): Promise<number> {
  const freed = await store.release(jobId);
  for (const sha of freed) await spool.remove(sha, () => store.spoolReferenced(sha));
  return freed.length;
}

/** The same for every finished job that still holds files (expired, or its releaser stopped first). */
export async function sweepSpool(store: JobStore, spool: Spool): Promise<number> {
  let removed = 0;
  for (const id of await store.finishedHoldingFiles()) removed += await freeSpooledFiles(store, spool, id);
  if (removed) logger.info({ removed }, `job spool: ${removed} files of finished jobs removed`);
  return removed;
}

/** `freeSpooledFiles` where a failure must not fail the caller: logged, and left to the next sweep. */
export function freeSpooledFilesLater(store: JobStore, spool: Spool, jobId: string): Promise<void> {
  return freeSpooledFiles(store, spool, jobId).then(
    () => undefined,
    (err: Error) => logger.warn({ err, job: jobId }, 'job spool: files not removed; the next sweep will'),
  );
}
