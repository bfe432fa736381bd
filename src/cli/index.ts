/** The `advsieve` command: one subcommand per file in ./commands. */
import { Command } from 'commander';
import { registerClassify } from './commands/classify';
import { registerTrain } from './commands/train';

export function buildProgram(): Command {
  const program = new Command('advsieve')
    .description('adversarial-image screening: classify, train and benchmark the reference model')
    .showHelpAfterError();
  registerTrain(program);
  registerClassify(program);
  return program;
}

/**
 * Runs the command line and exits: explicitly, since worker threads or a WebGPU device left by a
 * subcommand would otherwise keep the process alive.
 */
export function main(argv: string[] = process.argv): void {
  buildProgram()
    .parseAsync(argv)
    .then(() => process.exit(process.exitCode ?? 0))
    .catch((err: Error) => {
      process.stderr.write(`advsieve: ${err.message}\n`);
      process.exit(1);
    });
}

if (require.main === module) main();
