import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { DatasetMissingError, loadFashionMnist } from '../../src/data/fashionMnist';
import { IdxFormatError, parseIdx, readIdxFile } from '../../src/data/idx';

function idx(dims: number[], data: number[], type = 0x08): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = type;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, Buffer.from(data)]);
}

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-idx-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Writes a tiny Fashion-MNIST-shaped data set: n images of 2×3 pixels. */
function writeSet(prefix: string, n: number, gzip: boolean, labels?: number[]): void {
  const px = Array.from({ length: n * 6 }, (_, i) => (i * 37) % 256);
  const lb = labels ?? Array.from({ length: n }, (_, i) => i % 10);
  const write = (name: string, buf: Buffer) =>
    fs.writeFileSync(path.join(dir, gzip ? `${name}.gz` : name), gzip ? zlib.gzipSync(buf) : buf);
  write(`${prefix}-images-idx3-ubyte`, idx([n, 2, 3], px));
  write(`${prefix}-labels-idx1-ubyte`, idx([n], lb));
}

test('parses dimensions and bytes', () => {
  const a = parseIdx(idx([2, 2, 2], [0, 1, 2, 3, 4, 5, 6, 255]));
  expect(a.dims).toEqual([2, 2, 2]);
  expect(Array.from(a.data)).toEqual([0, 1, 2, 3, 4, 5, 6, 255]);
});

test('a truncated file is refused with the counts', () => {
  const full = idx(
    [3, 2, 2],
    Array.from({ length: 12 }, (_, i) => i),
  );
  expect(() => parseIdx(full.subarray(0, full.length - 5), 'x.idx')).toThrow(
    /x.idx: truncated: header declares 3×2×2 = 12 elements, file holds 7/,
  );
  expect(() => parseIdx(full.subarray(0, 9), 'x.idx')).toThrow(/truncated header/);
});

test('bad magic, other element types and trailing bytes are refused', () => {
  const good = idx([2], [1, 2]);
  const badMagic = Buffer.from(good);
  badMagic[0] = 1;
  expect(() => parseIdx(badMagic)).toThrow(IdxFormatError);
  expect(() => parseIdx(idx([1], [0, 0, 0, 0], 0x0d))).toThrow(/element type 0xd/);
  expect(() => parseIdx(Buffer.concat([good, Buffer.from([9])]))).toThrow(/1 trailing bytes/);
});

test('reads gzip-compressed files, finding name.gz when name is absent', () => {
  fs.writeFileSync(path.join(dir, 'a-idx1-ubyte.gz'), zlib.gzipSync(idx([3], [7, 8, 9])));
  expect(Array.from(readIdxFile(path.join(dir, 'a-idx1-ubyte')).data)).toEqual([7, 8, 9]);
});

test('a corrupt gzip stream is named as such', () => {
  const gz = zlib.gzipSync(idx([3], [7, 8, 9]));
  fs.writeFileSync(path.join(dir, 'b.gz'), gz.subarray(0, gz.length - 6));
  expect(() => readIdxFile(path.join(dir, 'b.gz'))).toThrow(/corrupt gzip stream/);
});

test.each([true, false])('loads a split scaled to [0, 1] (gzip %s), with a limit', (gzip) => {
  writeSet('train', 5, gzip);
  const set = loadFashionMnist('train', dir);
  expect(set.count).toBe(5);
  expect([set.height, set.width]).toEqual([2, 3]);
  expect(set.pixels[1]).toBeCloseTo(37 / 255);
  expect(Array.from(set.labels)).toEqual([0, 1, 2, 3, 4]);
  expect(loadFashionMnist('train', dir, 2).count).toBe(2);
});

test('missing files name the Debian package and --data', () => {
  expect(() => loadFashionMnist('test', dir)).toThrow(DatasetMissingError);
  expect(() => loadFashionMnist('test', dir)).toThrow(/apt-get install -y dataset-fashion-mnist.*--data DIR/);
});

test('a label out of range and mismatched counts are refused', () => {
  writeSet('t10k', 3, false, [1, 2, 12]);
  expect(() => loadFashionMnist('test', dir)).toThrow(/label 12 at index 2/);
  fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), idx([2], [1, 2]));
  expect(() => loadFashionMnist('test', dir)).toThrow(/holds 3 images but .* 2 labels/);
});
