/**
 * A data set on disk for screening jobs (bench:jobs, test/jobs): `count` distinct 28×28 PNGs, each
 * a Fashion-MNIST test fixture with one pixel changed by its number, in folders of 1000 as a data
 * set lies. Distinct on purpose: a request's identical files are decoded and inferred once
 * (src/server/requestImages.ts), which would flatter a job of copies.
 */
import * as fs from 'fs';
import * as path from 'path';
import { PNG } from 'pngjs';
import * as zlib from 'zlib';
import { PACKAGE_ROOT } from '../util/paths';

const FIXTURES = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'fashion');

/** The file of image `i`, relative to the data set's directory. */
export function jobImagePath(i: number): string {
  return path.join(`part-${String(Math.floor(i / 1000)).padStart(3, '0')}`, `img-${String(i).padStart(6, '0')}.png`);
}

/** A grayscale 8-bit PNG of `gray` (rows unfiltered): written here, as pngjs's encoder takes ms an image. */
function grayPng(gray: Uint8Array, width: number, height: number): Buffer {
  const raw = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y++) raw.set(gray.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const chunk = (type: string, data: Buffer) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth; colour type 0 (gray), compression, filter and interlace 0
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw, { level: 1 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

export function writeJobImages(dir: string, count: number): void {
  const bases = fs
    .readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.png'))
    .sort()
    .map((f) => {
      const png = PNG.sync.read(fs.readFileSync(path.join(FIXTURES, f)));
      return { width: png.width, height: png.height, gray: png.data.filter((_, j) => j % 4 === 0) };
    });
  for (let i = 0; i < count; i++) {
    const base = bases[i % bases.length];
    const gray = Uint8Array.from(base.gray);
    // Image i differs from every other of its base in pixel (i / bases) mod pixels, by a step that
    // grows each time the pixels are used up: distinct for the first bases × pixels × 255 images.
    const k = Math.floor(i / bases.length);
    const pixels = base.width * base.height;
    gray[k % pixels] = (gray[k % pixels] + 1 + Math.floor(k / pixels)) % 256;
    const file = path.join(dir, jobImagePath(i));
    if (i % 1000 === 0) fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, grayPng(gray, base.width, base.height));
  }
}
