/**
 * `advsieve serve [--port N] [--model DIR] [--models LIST]`: the GraphQL screening service (docs/api.md). The
 * configuration is the environment's (PORT, ADVSIEVE_*); the options override it. Runs until
 * SIGTERM or SIGINT, then shuts down gracefully and exits 0; a second signal exits at once.
 */
import { Command } from 'commander';
import { configFromEnv, modelList } from '../../server/config';
import { startServer } from '../../server/server';
import { logger } from '../../util/logger';
import { intOption } from '../options';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve the GraphQL screening API on /graphql (configuration: environment, see docs/api.md)')
    .option('--port <n>', 'port to listen on (default: PORT, else 4000; 0 picks a free one)', intOption)
    .option('--model <dir>', "the default model's directory (default: ADVSIEVE_MODEL_DIR, else the bundled model)")
    .option(
      '--models <list>',
      'more models to serve beside it, comma-separated directories or ids under models/ (default: ADVSIEVE_MODELS)',
    )
    .action(async (opts: { port?: number; model?: string; models?: string }) => {
      const config = {
        ...configFromEnv(),
        ...(opts.port !== undefined ? { port: opts.port } : {}),
        ...(opts.model !== undefined ? { modelDir: opts.model } : {}),
        ...(opts.models !== undefined ? { extraModelDirs: modelList({ ADVSIEVE_MODELS: opts.models }) } : {}),
      };
      const server = await startServer(config);
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals) => {
        if (++signals > 1) {
          logger.warn({ signal }, 'second signal: exiting without waiting');
          process.exit(1);
        }
        server.shutdown(signal).catch((err: Error) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        });
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      await server.closed;
    });
}
