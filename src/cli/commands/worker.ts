/**
 * `advsieve worker [--model DIR] [--models LIST] [--concurrency N]`: a consumer of screening-job
 * batches without HTTP (src/jobs/jobConsumer.ts): the service's models, decode processes and audit
 * log, and a BullMQ worker on REDIS_URL. Scale jobs by running more of these. Runs until SIGTERM or
 * SIGINT, then finishes the batches it is screening and exits 0; a second signal exits at once (its
 * batches go to another worker once their lock runs out).
 */
import { Command } from 'commander';
import { openJobs } from '../../jobs/openJobs';
import { Metrics } from '../../request/metrics';
import { configFromEnv, modelList } from '../../server/config';
import { ScreeningService } from '../../server/service';
import { logger } from '../../util/logger';
import { intOption } from '../options';

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description('screen bulk jobs from the Redis queue (REDIS_URL), without serving HTTP')
    .option('--model <dir>', "the default model's directory (default: ADVSIEVE_MODEL_DIR, else the bundled model)")
    .option('--models <list>', 'more models, as `serve --models` (default: ADVSIEVE_MODELS)')
    .option(
      '--concurrency <n>',
      'batches screened at once (default: ADVSIEVE_JOB_CONCURRENCY, else 4 per engine worker)',
      intOption,
    )
    .action(async (opts: { model?: string; models?: string; concurrency?: number }) => {
      const env = configFromEnv();
      if (!env.jobs.redisUrl) throw new Error('REDIS_URL is not set: a worker takes its work from Redis');
      const config = {
        ...env,
        ...(opts.model !== undefined ? { modelDir: opts.model } : {}),
        ...(opts.models !== undefined ? { extraModelDirs: modelList({ ADVSIEVE_MODELS: opts.models }) } : {}),
        jobs: { ...env.jobs, concurrency: opts.concurrency ?? env.jobs.concurrency },
      };
      const service = await ScreeningService.start(config, new Metrics());
      const jobs = await openJobs(service, true).catch(async (err: Error) => {
        await service.close();
        throw err;
      });
      logger.info('worker ready: screening job batches');
      await new Promise<void>((resolve) => {
        let signals = 0;
        const onSignal = (signal: NodeJS.Signals) => {
          if (++signals > 1) {
            logger.warn({ signal }, 'second signal: exiting without waiting');
            process.exit(1);
          }
          logger.info({ signal }, `worker stopping (${signal}): finishing its batches`);
          resolve();
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
      });
      await jobs!.close();
      await service.close();
    });
}
