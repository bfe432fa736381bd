/**
 * `advsieve screen` decodes in process but screens the same views as the service (issue 11,
 * item 6): content hidden under alpha = 0 is screened with its alpha dropped, multi-frame files are
 * refused with their code, and a plain image keeps its one view.
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';
import { hiddenUnderAlpha, multiFrame } from '../api/hostileFiles';
import { FIXTURE_DIR } from '../helpers/fixtures';

const run = promisify(execFile);
const BIN = path.join(__dirname, '..', '..', 'bin', 'advsieve.js');
let tmp: string;
beforeAll(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-views-'))));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Row {
  file: string;
  prediction?: { label: string };
  detection?: { adversarial: boolean; score: number };
  views?: Array<{ name: string; adversarial: boolean; score: number; prediction: { label: string } }>;
  flaggedView?: string | null;
  error?: { code: string };
}

test('screen --json: views and flaggedView per file; hidden content seen; multi-frame refused', async () => {
  const trouser = fs.readFileSync(path.join(FIXTURE_DIR, 'test-0002-trouser.png'));
  const sandal = fs.readFileSync(path.join(FIXTURE_DIR, 'test-0008-sandal.png'));
  const hidden = path.join(tmp, 'hidden.png');
  const frames = path.join(tmp, 'frames.gif');
  fs.writeFileSync(hidden, await hiddenUnderAlpha(trouser));
  fs.writeFileSync(frames, await multiFrame('gif', [trouser, sandal]));
  const plain = path.join(FIXTURE_DIR, 'test-0002-trouser.png');
  const { stdout } = await run('node', [BIN, 'screen', hidden, plain, frames, '--json'], {
    env: { ...process.env, LOG_LEVEL: 'warn' },
  }).catch((e: { stdout: string }) => e); // exit status 1: one file is refused
  const [h, p, f] = JSON.parse(stdout) as Row[];
  expect(h.views!.map((v) => [v.name, v.prediction.label])).toEqual([
    ['composited', expect.not.stringMatching(/^Trouser$/)],
    ['alpha-dropped', 'Trouser'],
  ]);
  const top = h.views!.reduce((a, b) => (b.score > a.score ? b : a));
  expect(h.detection!.score).toBe(top.score);
  expect(h.flaggedView).toBe(h.detection!.adversarial ? top.name : null);
  expect(p.views!.map((v) => v.name)).toEqual(['image']);
  expect(p.prediction!.label).toBe('Trouser');
  expect(f.error!.code).toBe('MULTI_FRAME_IMAGE');
}, 120_000);
