/** The `advsieve` command as users run it: a child process, stdout and exit codes. */
import * as path from 'path';
import { FIXTURE_DIR, fixtureLabels } from '../helpers/fixtures';
import { advsieve } from '../helpers/cli';

test('--help lists the subcommands', async () => {
  const { stdout, code } = await advsieve('--help');
  expect(code).toBe(0);
  expect(stdout).toMatch(/train \[options\]/);
  expect(stdout).toMatch(/classify \[options\] <files\.\.\.>/);
});

test('classify --json prints one JSON array with label, class index and confidence per file', async () => {
  const fx = fixtureLabels().slice(0, 6);
  const { stdout, code } = await advsieve('classify', ...fx.map((f) => f.file), '--json');
  expect(code).toBe(0);
  const rows = JSON.parse(stdout) as Array<{ file: string; label: string; classIndex: number; confidence: number }>;
  expect(rows).toHaveLength(6);
  rows.forEach((r, i) => {
    expect(r.file).toBe(fx[i].file);
    expect(typeof r.label).toBe('string');
    expect(Number.isInteger(r.classIndex)).toBe(true);
    expect(r.confidence).toBeGreaterThan(0);
    expect(r.confidence).toBeLessThanOrEqual(1);
  });
  expect(rows.filter((r, i) => r.classIndex === fx[i].label).length).toBeGreaterThanOrEqual(5);
  // Probabilities are JSON floats even when float32 saturates to exactly 1 (clients type them).
  for (const m of stdout.matchAll(/"(confidence|score)": ([^,\n}]+)/g)) expect(m[2]).toMatch(/[.eE]/);
});

test('classify prints a line per file; a missing or non-image file gets a coded error and exit 1, the others are classified', async () => {
  const good = path.join(FIXTURE_DIR, 'test-0002-trouser.png');
  const { stdout, code } = await advsieve('classify', good, '/nonexistent.png', path.join(FIXTURE_DIR, 'labels.json'));
  expect(code).toBe(1);
  const lines = stdout.trim().split('\n');
  expect(lines[0]).toMatch(/test-0002-trouser.png: Trouser \(class 1, confidence \d+\.\d %\)/);
  expect(lines[1]).toMatch(/nonexistent.png: error FILE_NOT_FOUND/);
  expect(lines[2]).toMatch(/labels.json: error UNSUPPORTED_FORMAT/);
});

test('a bad option value is named', async () => {
  const { stderr, code } = await advsieve('classify', '--top', 'many', 'x.png');
  expect(code).not.toBe(0);
  expect(stderr).toMatch(/expected a non-negative integer, got 'many'/);
});
