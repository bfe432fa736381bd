/**
 * A process's part in bulk screening jobs, from its configuration: the store (to submit and read
 * jobs) when REDIS_URL is set, and a consumer of their batches when this process takes work
 * (ADVSIEVE_JOB_CONSUMER, on by default; `advsieve worker` always). Both the HTTP server and the
 * worker command start them here, and close them in this order: the consumer (its batches in
 * progress finish), then the store.
 */
import type { ScreeningService } from '../server/service';
import { logger } from '../util/logger';
import { JobConsumer } from './jobConsumer';
import { JobStore } from './jobStore';
import { redactedUrl } from '../util/redactedUrl';

export interface OpenedJobs {
  readonly store: JobStore;
  readonly consumer: JobConsumer | undefined;
  /** The consumer first (waits for its batches), then the store's connections. */
  close(): Promise<void>;
}

export async function openJobs(service: ScreeningService, consume: boolean): Promise<OpenedJobs | undefined> {
  const config = service.config.jobs;
  if (!config.redisUrl) return undefined;
  const store = await JobStore.open(config.redisUrl, config);
  const consumer = consume ? await JobConsumer.start(service, store, config) : undefined;
  logger.info(
    { redis: redactedUrl(config.redisUrl, 'REDIS_URL'), consumer: consume },
    `screening jobs on ${redactedUrl(config.redisUrl, 'REDIS_URL')}${consume ? ', consuming' : ''}`,
  );
  return {
    store,
    consumer,
    async close() {
      await consumer?.close();
      await store.close();
    },
  };
}
