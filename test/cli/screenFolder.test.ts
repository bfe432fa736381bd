/**
 * `screen DIR --recursive`: every file under the folder, sorted, hidden ones skipped, screened a
 * chunk at a time (SCREEN_CHUNK) with the same verdicts whichever output; --jsonl streams a line
 * per image; a folder without --recursive is refused.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SCREEN_CHUNK } from '../../src/cli/commands/screen';
import { advsieve } from '../helpers/cli';
import { fixtureLabels } from '../helpers/fixtures';

let dir: string;
const expected: string[] = [];

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-screen-dir-'));
  const fixtures = fixtureLabels().map((f) => f.file);
  // More files than one chunk, in nested folders, with a hidden folder and a file that is no image.
  const count = SCREEN_CHUNK + 6;
  for (let i = 0; i < count; i++) {
    const sub = path.join(dir, i % 2 ? 'b' : 'a', i % 3 ? '' : 'deep');
    fs.mkdirSync(sub, { recursive: true });
    const file = path.join(sub, `img-${String(i).padStart(3, '0')}.png`);
    fs.copyFileSync(fixtures[i % fixtures.length], file);
  }
  fs.mkdirSync(path.join(dir, '.hidden'));
  fs.copyFileSync(fixtures[0], path.join(dir, '.hidden', 'skipped.png'));
  fs.writeFileSync(path.join(dir, 'b', 'notes.txt'), 'not an image');
  // Sorted at each level: a/ (its files, then deep/), then b/ likewise.
  const walk = (d: string): string[] =>
    fs
      .readdirSync(d, { withFileTypes: true })
      .filter((e) => !e.name.startsWith('.'))
      .sort((x, y) => (x.name < y.name ? -1 : 1))
      .flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
  expected.push(...walk(dir));
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test('--jsonl: one JSON object a line for every file under the folder, in order, across chunks; --json the same rows', async () => {
  const lines = await advsieve('screen', dir, '--recursive', '--jsonl', '--no-progress');
  expect(lines.code).toBe(1); // notes.txt is no image
  const rows = lines.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { file: string; error?: { code: string }; detection?: { adversarial: boolean } });
  expect(rows.map((r) => r.file)).toEqual(expected);
  expect(rows.length).toBe(SCREEN_CHUNK + 7);
  expect(rows.filter((r) => r.error).map((r) => path.basename(r.file))).toEqual(['notes.txt']);
  expect(rows.filter((r) => r.detection).length).toBe(SCREEN_CHUNK + 6);
  const array = await advsieve('screen', dir, '--recursive', '--json');
  expect(JSON.parse(array.stdout)).toEqual(rows);
  // The progress line goes to stderr, never into the JSON.
  expect(array.stderr).toMatch(new RegExp(`screen: ${SCREEN_CHUNK + 7} images, \\d+ flagged, 1 failed`));
});

test('a folder without --recursive is refused, naming the flag', async () => {
  const r = await advsieve('screen', dir, '--json');
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/is a folder: pass --recursive/);
});
