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

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .then(() => process.exit(process.exitCode ?? 0))
    .catch((err: Error) => {
      process.stderr.write(`advsieve: ${err.message}\n`);
      process.exit(1);
    });
}
