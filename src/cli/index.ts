/** The `advsieve` command: one subcommand per file in ./commands. */
import { Command } from 'commander';
import { registerAttack } from './commands/attack';
import { registerCalibrate } from './commands/calibrate';
import { registerClassify } from './commands/classify';
import { registerEvaluate } from './commands/evaluate';
import { registerKeys } from './commands/keys';
import { registerScreen } from './commands/screen';
import { registerServe } from './commands/serve';
import { registerTrain } from './commands/train';

export function buildProgram(): Command {
  const program = new Command('advsieve')
    .description('adversarial-image screening: serve the API, screen, classify, attack, calibrate, evaluate, train')
    .showHelpAfterError();
  registerTrain(program);
  registerClassify(program);
  registerAttack(program);
  registerCalibrate(program);
  registerScreen(program);
  registerEvaluate(program);
  registerServe(program);
  registerKeys(program);
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
