/** The `advsieve` command: one subcommand per file in ./commands. */
import { Command } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
import { PACKAGE_ROOT } from '../util/paths';
import { registerAttack } from './commands/attack';
import { registerCalibrate } from './commands/calibrate';
import { registerClassify } from './commands/classify';
import { registerEvaluate } from './commands/evaluate';
import { registerImport } from './commands/import';
import { registerKeys } from './commands/keys';
import { registerRobustness } from './commands/robustness';
import { registerScreen } from './commands/screen';
import { registerServe } from './commands/serve';
import { registerStudy } from './commands/study';
import { registerTrain } from './commands/train';
import { registerWorker } from './commands/worker';

/** The version in package.json (the package root is two folders above dist/cli/). */
function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

export function buildProgram(): Command {
  const program = new Command('advsieve')
    .version(packageVersion(), '-V, --version', 'print the version')
    .description(
      'adversarial-image screening: serve the API, screen, classify, attack, calibrate, evaluate, train, import models, screen bulk jobs (worker), study the causes of adversarial examples, measure robustness under PGD',
    )
    .showHelpAfterError();
  registerTrain(program);
  registerClassify(program);
  registerAttack(program);
  registerCalibrate(program);
  registerScreen(program);
  registerEvaluate(program);
  registerServe(program);
  registerKeys(program);
  registerImport(program);
  registerWorker(program);
  registerStudy(program);
  registerRobustness(program);
  return program;
}

/**
 * Resolves once everything written to `stream` so far has been handed to the operating system.
 * Writes to a pipe are asynchronous in Node: exiting before they drain cuts the output off (at
 * 64 KiB, a pipe's buffer), which is what `advsieve screen --json | jq` met. Writes complete in
 * order, so an empty write's callback means every earlier one is done; a reader that has gone
 * (EPIPE: `| head`) counts as drained.
 */
export function drained(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.destroyed || !stream.writable) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('error', () => resolve());
    stream.write('', () => resolve());
  });
}

/**
 * Runs the command line and exits: explicitly, since worker threads or a WebGPU device left by a
 * subcommand would otherwise keep the process alive; but only once stdout and stderr have drained.
 */
export function main(argv: string[] = process.argv): void {
  const exit = async (code: number) => {
    await Promise.all([drained(process.stdout), drained(process.stderr)]);
    process.exit(code);
  };
  buildProgram()
    .parseAsync(argv)
    .then(() => exit(Number(process.exitCode ?? 0)))
    .catch((err: Error) => {
      process.stderr.write(`advsieve: ${err.message}\n`);
      return exit(1);
    });
}

if (require.main === module) main();
