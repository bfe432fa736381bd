/**
 * The command line's output arrives whole whatever stdout is. Through a pipe Node writes
 * asynchronously, and a CLI that exits before its writes drain cuts the output at the pipe's
 * buffer (64 KiB): `advsieve classify … --json | jq` lost everything after it.
 */
import { spawn } from 'child_process';
import * as path from 'path';
import { fixtureLabels } from '../helpers/fixtures';

const BIN = path.join(__dirname, '..', '..', 'bin', 'advsieve.js');

/** Runs the CLI with stdout a pipe read slowly at first (so that the pipe fills), as `| jq` would. */
function throughPipe(args: string[], readDelayMs: number): Promise<{ stdout: Buffer; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const chunks: Buffer[] = [];
    child.stdout.pause();
    setTimeout(() => child.stdout.resume(), readDelayMs);
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ stdout: Buffer.concat(chunks), code }));
  });
}

test('classify --json of 200 images through a pipe: every row arrives and parses', async () => {
  const files = fixtureLabels().map((f) => f.file);
  const many = Array.from({ length: 200 }, (_, i) => files[i % files.length]);
  const { stdout, code } = await throughPipe(['classify', ...many, '--json', '--top', '10'], 1500);
  expect(code).toBe(0);
  // More than a pipe's buffer, or this test would not test the drain.
  expect(stdout.length).toBeGreaterThan(128 * 1024);
  const rows = JSON.parse(stdout.toString('utf8')) as Array<{ file: string; prediction: unknown }>;
  expect(rows).toHaveLength(200);
  expect(rows.map((r) => r.file)).toEqual(many);
});

test('a reader that stops early (| head) does not hang the CLI', async () => {
  const files = fixtureLabels().map((f) => f.file);
  const many = Array.from({ length: 200 }, (_, i) => files[i % files.length]);
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'classify', ...many, '--json', '--top', '10'], {
      env: { ...process.env, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    child.stdout.once('data', () => child.stdout.destroy());
    child.on('error', reject);
    child.on('close', resolve);
  });
  expect(code).not.toBeNull(); // it exited by itself
});

test('a plain CLI run keeps stderr for what the user must read: no driver warnings, no logs', async () => {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // As a user runs it: no backend forced, no log level set.
  delete env.ADVSIEVE_BACKEND;
  delete env.LOG_LEVEL;
  delete env.ADVSIEVE_WEBGPU_ALLOW_SOFTWARE;
  const { stdout, stderr, code } = await new Promise<{ stdout: string; stderr: string; code: number | null }>(
    (resolve, reject) => {
      const child = spawn(process.execPath, [BIN, 'classify', fixtureLabels()[0].file], { env });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (c) => resolve({ stdout: out, stderr: err, code: c }));
    },
  );
  expect(code).toBe(0);
  expect(stdout).toMatch(/confidence/);
  expect(stderr).toBe('');
});

test('--version prints the package version', async () => {
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, '--version']);
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.on('error', reject);
    child.on('close', () => resolve(text));
  });
  expect(out.trim()).toBe((require('../../package.json') as { version: string }).version);
});
