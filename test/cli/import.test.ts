/** `advsieve import` as users run it: a child process, its output and exit codes (0, or 2 on a refusal). */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { graphNodes, writeGraphModel } from '../helpers/importModels';
import { advsieve } from '../helpers/cli';

let root: string;
beforeAll(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-import-cli-'))));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

test('imports a graph model: models/<id>/ with metadata.json, a summary line, exit 0', async () => {
  const src = path.join(root, 'graph');
  writeGraphModel(src);
  const labels = path.join(root, 'labels.txt');
  fs.writeFileSync(labels, 'a\nb\nc\n');
  const models = path.join(root, 'models');
  const { stdout, code } = await advsieve(
    'import',
    src,
    '--id',
    'tiny',
    '--labels',
    labels,
    '--preprocess',
    'caffe',
    '--models-dir',
    models,
  );
  expect(code).toBe(0);
  expect(stdout).toMatch(/imported graph-model as .*tiny\/ \(sha256 [0-9a-f]{16}…\)/);
  expect(stdout).toMatch(/activation layers: block\/add, flatten, logits/);
  const metadata = JSON.parse(fs.readFileSync(path.join(models, 'tiny', 'metadata.json'), 'utf8'));
  expect(metadata.labels).toEqual(['a', 'b', 'c']);
  expect(metadata.preprocessing).toEqual({ scale: 255, channelOrder: 'bgr', mean: [103.939, 116.779, 123.68] });
  expect(fs.existsSync(path.join(models, 'tiny', 'weights.bin'))).toBe(true);
});

test('a refusal: exit 2, the code and message on stderr, or {error: {code, message}} with --json', async () => {
  const src = path.join(root, 'vector');
  writeGraphModel(src, graphNodes([-1, 10]));
  const args = ['import', src, '--id', 'v', '--models-dir', path.join(root, 'models')];
  const text = await advsieve(...args);
  expect(text.code).toBe(2);
  expect(text.stderr).toMatch(/^advsieve import: refused \(MODEL_NOT_IMAGE_INPUT\): .*model\.json: not an image model/);
  const json = await advsieve(...args, '--json');
  expect(json.code).toBe(2);
  expect(JSON.parse(json.stdout)).toEqual({
    error: {
      code: 'MODEL_NOT_IMAGE_INPUT',
      message: expect.stringMatching(/model\.json: not an image model: its input is \[null,10\]/),
    },
  });
});

test('a bad --preprocess or --input-size is named', async () => {
  const { stderr, code } = await advsieve('import', root, '--id', 'x', '--preprocess', 'imagenet');
  expect(code).not.toBe(0);
  expect(stderr).toMatch(/expected one of unit, minus-one-one, caffe, torch or a JSON object, got 'imagenet'/);
});
