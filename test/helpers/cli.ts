/** The `advsieve` command as users run it: a child process of bin/advsieve.js (the built dist/). */
import { execFile } from 'child_process';
import * as path from 'path';
import { promisify } from 'util';

const run = promisify(execFile);
export const BIN = path.join(__dirname, '..', '..', 'bin', 'advsieve.js');

/** Its stdout, stderr and exit code; logs at warn and above. */
export async function advsieve(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run('node', [BIN, ...args], {
      env: { ...process.env, LOG_LEVEL: 'warn' },
      maxBuffer: 64 << 20,
    });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

/** `train` on 256 images for one epoch in one worker, into `out`: a model in seconds, for the command's plumbing. */
export function quickTrainArgs(data: string, out: string): string[] {
  return [
    'train',
    '--data',
    data,
    '--out',
    out,
    '--epochs',
    '1',
    '--limit',
    '256',
    '--batch-size',
    '32',
    '--workers',
    '1',
  ];
}
