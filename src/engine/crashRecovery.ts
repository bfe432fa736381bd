/**
 * Running a batch when inference workers die under it. A death is usually the worker's own doing
 * (an out-of-memory kill, a native fault), so the batch first runs once more, whole. If that run
 * dies too, an image of the batch probably kills workers (an input that crashes the backend): each
 * image then runs alone, once, so that only the images that kill a worker fail (WorkerCrashedError)
 * and the others — often other requests' images — are answered.
 *
 * Deaths per image that kills workers: three when it shares its batch (the batch's run, its rerun,
 * its own run alone), two when it is alone in its batch (the rerun ran it alone already); k such
 * images in one batch cost 2 + k. Bisecting instead would need fewer runs but 2 + log2(batch)
 * deaths for one bad image (8 for a batch of 64), and a death costs far more than a run: a new
 * worker that loads the model, with the pool a worker short meanwhile. The runs alone happen only
 * after two deaths, so their cost (a worker round trip per image) is rare.
 *
 * Before the rerun and before the runs alone, items whose deadline has passed are dropped with
 * DeadlineExceededError: their callers have given up. Each run is given the latest deadline of its
 * items, and the pool drops a run still waiting for a worker at that deadline (DeadlineExceededError
 * again, for each of its items).
 */
import { BatchItemInfo, DeadlineExceededError } from './batcher';
import { WorkerCrashedError } from './pool';

/** Runs items on a worker: `attempt` 1 first, 2 for the rerun, 3 for an image run alone. */
export type RunOnWorker<I, O> = (items: I[], attempt: number, deadline: number) => Promise<Array<O | Error>>;

export interface CrashRecoveryHooks {
  /** The batch's worker died; `items` live items run again, whole. */
  readonly onRerun?: (items: number, err: WorkerCrashedError) => void;
  /** The rerun died too; `items` live items run alone, one run each. */
  readonly onIsolate?: (items: number, err: WorkerCrashedError) => void;
}

/** One result (or Error) per item, in order, as DynamicBatcher's `run` must give. */
export async function runSurvivingCrashes<I, O>(
  items: readonly I[],
  info: readonly BatchItemInfo[],
  run: RunOnWorker<I, O>,
  hooks: CrashRecoveryHooks = {},
  now: () => number = () => performance.now(),
): Promise<Array<O | Error>> {
  const results = new Array<O | Error>(items.length);
  const expire = (i: number, t: number) => (results[i] = new DeadlineExceededError(t - info[i].enqueuedAt));
  /** The items still awaited; the others get DeadlineExceededError. */
  const live = (indices: readonly number[]): number[] => {
    const t = now();
    const kept: number[] = [];
    for (const i of indices) {
      if (info[i].deadline > t) kept.push(i);
      else expire(i, t);
    }
    return kept;
  };
  /** Runs the items together: their results filled in, or the death that took them. Other errors throw. */
  const runTogether = async (indices: readonly number[], attempt: number): Promise<WorkerCrashedError | undefined> => {
    const deadline = Math.max(...indices.map((i) => info[i].deadline));
    try {
      const out = await run(
        indices.map((i) => items[i]),
        attempt,
        deadline,
      );
      indices.forEach((i, k) => (results[i] = out[k]));
    } catch (err) {
      if (err instanceof WorkerCrashedError) return err;
      if (!(err instanceof DeadlineExceededError)) throw err;
      const t = now();
      indices.forEach((i) => expire(i, t)); // the pool dropped the run unrun
    }
    return undefined;
  };

  const all = items.map((_, i) => i);
  const first = await runTogether(all, 1);
  if (!first) return results;
  const rerun = live(all);
  if (rerun.length === 0) return results;
  hooks.onRerun?.(rerun.length, first);
  const second = await runTogether(rerun, 2);
  if (!second) return results;
  if (rerun.length === 1) {
    results[rerun[0]] = second; // it ran alone already
    return results;
  }
  const alone = live(rerun);
  if (alone.length > 0) hooks.onIsolate?.(alone.length, second);
  await Promise.all(
    alone.map(async (i) => {
      try {
        const death = await runTogether([i], 3);
        if (death) results[i] = death;
      } catch (err) {
        results[i] = err instanceof Error ? err : new Error(String(err));
      }
    }),
  );
  return results;
}
