/**
 * Start-up checks of `advsieve serve`: a model directory with one file missing, corrupt or
 * belonging to another model stops the start before any worker runs, with exit status 1 and one
 * line on stderr naming the file and the reason. Each case breaks one file of a copy of the
 * bundled model.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ROOT, startServer } from './helpers';

const MODEL = path.join(ROOT, 'models', 'fashion-cnn');
let tmp: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-startup-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function modelCopy(name: string): string {
  const dir = path.join(tmp, name);
  fs.cpSync(MODEL, dir, { recursive: true });
  return dir;
}

const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
const writeJson = (file: string, value: unknown) => fs.writeFileSync(file, JSON.stringify(value));
const edit = (file: string, change: (j: Record<string, unknown>) => void) => {
  const j = readJson(file);
  change(j);
  writeJson(file, j);
};

function serve(modelDir: string): Promise<{ code: number | null; stderr: string; ms: number }> {
  const start = performance.now();
  const proc = spawn(process.execPath, ['bin/advsieve.js', 'serve'], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: '0',
      LOG_LEVEL: 'info',
      ADVSIEVE_BACKEND: 'wasm',
      ADVSIEVE_MODEL_DIR: modelDir,
      ADVSIEVE_AUDIT: '0',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000); // a start that does not fail would serve forever
  return new Promise((resolve) =>
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, ms: performance.now() - start });
    }),
  );
}

interface BrokenCase {
  readonly name: string;
  readonly file: string;
  readonly reason: RegExp;
  readonly breakIt: (dir: string) => void;
}

const CASES: BrokenCase[] = [
  {
    name: 'model.json missing',
    file: 'model.json',
    reason: /missing/,
    breakIt: (d) => fs.rmSync(path.join(d, 'model.json')),
  },
  {
    name: 'model.json not JSON',
    file: 'model.json',
    reason: /not valid JSON/,
    breakIt: (d) => fs.writeFileSync(path.join(d, 'model.json'), '{"format": "layers-model", "modelTop'),
  },
  {
    name: 'model.json a graph model without a graph',
    file: 'model.json',
    reason: /not a tfjs graph model \(modelTopology has no `node` list\)/,
    breakIt: (d) => edit(path.join(d, 'model.json'), (j) => (j.format = 'graph-model')),
  },
  {
    name: 'model.json without a weights manifest',
    file: 'model.json',
    reason: /not a tfjs layers model \(modelTopology or weightsManifest missing\)/,
    breakIt: (d) => edit(path.join(d, 'model.json'), (j) => delete j.weightsManifest),
  },
  {
    name: 'weights file missing',
    file: 'weights.bin',
    reason: /missing \(named in model\.json weightsManifest\)/,
    breakIt: (d) => fs.rmSync(path.join(d, 'weights.bin')),
  },
  {
    name: 'weights file truncated',
    file: 'weights.bin',
    reason: /holds 1000000 bytes; model\.json declares 1686568/,
    breakIt: (d) => fs.truncateSync(path.join(d, 'weights.bin'), 1_000_000),
  },
  {
    name: 'metadata.json missing',
    file: 'metadata.json',
    reason: /missing/,
    breakIt: (d) => fs.rmSync(path.join(d, 'metadata.json')),
  },
  {
    name: 'metadata.json not JSON',
    file: 'metadata.json',
    reason: /not valid JSON/,
    breakIt: (d) => fs.writeFileSync(path.join(d, 'metadata.json'), 'id: fashion-cnn\n'),
  },
  {
    name: 'metadata.json naming a layer the model lacks',
    file: 'metadata.json',
    reason: /'activationLayers' names layer 'conv9', which model\.json does not have/,
    breakIt: (d) => edit(path.join(d, 'metadata.json'), (j) => (j.activationLayers = ['conv1', 'conv9'])),
  },
  {
    name: 'metadata.json with fewer labels than the model has outputs',
    file: 'metadata.json',
    reason: /9 labels, but the model's 'logits' layer has 10 outputs/,
    breakIt: (d) => edit(path.join(d, 'metadata.json'), (j) => (j.labels = (j.labels as string[]).slice(0, 9))),
  },
  {
    name: 'metadata.json with another input shape',
    file: 'metadata.json',
    reason: /'inputShape' \[32,32,1\] differs from the model's input \[28,28,1\]/,
    breakIt: (d) => edit(path.join(d, 'metadata.json'), (j) => (j.inputShape = [32, 32, 1])),
  },
  {
    name: 'calibration missing',
    file: 'calibration.json',
    reason: /no calibration file; run `npx advsieve calibrate`/,
    breakIt: (d) => fs.rmSync(path.join(d, 'calibration.json')),
  },
  {
    name: 'calibration corrupt',
    file: 'calibration.json',
    reason: /not valid JSON/,
    breakIt: (d) => {
      const f = path.join(d, 'calibration.json');
      fs.writeFileSync(f, fs.readFileSync(f).subarray(0, 5000));
    },
  },
  {
    name: 'calibration of another model',
    file: 'calibration.json',
    reason: /belongs to model fashion-cnn with SHA-256 000000000000…, but the loaded model's is/,
    breakIt: (d) =>
      edit(path.join(d, 'calibration.json'), (j) => ((j.model as { sha256: string }).sha256 = '0'.repeat(64))),
  },
  {
    name: 'weights of the right size but other values (the calibration no longer matches)',
    file: 'calibration.json',
    reason: /belongs to model fashion-cnn .* calibrate again/,
    breakIt: (d) => {
      const f = path.join(d, 'weights.bin');
      const w = fs.readFileSync(f);
      w[1000] ^= 0x40;
      fs.writeFileSync(f, w);
    },
  },
];

test.each(CASES)('$name: exit 1 before any worker starts, naming $file and why', async (c) => {
  const dir = modelCopy(c.name.replace(/[^a-z0-9]+/gi, '-'));
  c.breakIt(dir);
  const { code, stderr, ms } = await serve(dir);
  expect(code).toBe(1);
  const lines = stderr.split('\n').filter((l) => l.startsWith('advsieve: '));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(`advsieve: ${path.join(dir, c.file)}: `);
  expect(lines[0]).toMatch(c.reason);
  // The workers never started: no engine line, and the failure took no model load.
  expect(stderr).not.toMatch(/engine ready/);
  expect(ms).toBeLessThan(20_000);
});

test('the intact copy starts and serves (the cases above fail for their broken file alone)', async () => {
  const server = await startServer({
    ADVSIEVE_MODEL_DIR: modelCopy('intact'),
    ADVSIEVE_AUDIT: '0',
    ADVSIEVE_WORKERS: '1',
  });
  try {
    expect(server.readinessSeen[server.readinessSeen.length - 1]).toBe(200);
  } finally {
    expect((await server.stop()).code).toBe(0);
  }
});
