/**
 * Hostile and malformed image files, made at test time (nothing big is committed): PNG chunks
 * written by hand (so that CRCs, lengths and header fields can lie), header patches for JPEG, GIF,
 * WebP and TIFF that declare huge sizes, a real decompression bomb, and a seeded PRNG for random
 * bytes and the fuzz run's mutations.
 */
import sharp from 'sharp';
import * as zlib from 'zlib';
import { crc32, PNG_SIGNATURE, pngChunk } from '../../src/bench/pngChunks';
import { mulberry32 } from '../../src/train/random';

export { crc32, PNG_SIGNATURE, pngChunk };

/** An 8-bit greyscale PNG of the given header size around an IDAT of the given (compressed) data. */
export function greyPng(width: number, height: number, idat: Buffer): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', idat),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** The chunks of a PNG: offset of each chunk's length field, its type and data length. */
export function pngChunks(png: Buffer): Array<{ offset: number; type: string; length: number }> {
  const out: Array<{ offset: number; type: string; length: number }> = [];
  for (let offset = 8; offset + 8 <= png.length;) {
    const length = png.readUInt32BE(offset);
    out.push({ offset, type: png.toString('latin1', offset + 4, offset + 8), length });
    offset += 12 + length;
  }
  return out;
}

/**
 * A real decompression bomb: a valid width×height greyscale PNG of zeros, whose pixels would take
 * width × height bytes (400 MB for 20000²) but whose file is about a thousandth of that.
 */
export async function pngBomb(width: number, height: number): Promise<Buffer> {
  const deflate = zlib.createDeflate({ level: 9 });
  const parts: Buffer[] = [];
  deflate.on('data', (c: Buffer) => parts.push(c));
  const done = new Promise((resolve) => deflate.on('end', resolve));
  const row = Buffer.alloc(width + 1); // filter byte 0, then zeros
  for (let y = 0; y < height; y++) {
    if (!deflate.write(row)) await new Promise((r) => deflate.once('drain', r));
  }
  deflate.end();
  await done;
  return greyPng(width, height, Buffer.concat(parts));
}

/** A JPEG whose first SOF marker declares width × height (the scan data is the original's). */
export function jpegDeclaring(jpeg: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(jpeg);
  for (let i = 2; i + 9 < out.length;) {
    if (out[i] !== 0xff) throw new Error(`no marker at ${i}`);
    const marker = out[i + 1];
    const length = out.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xc3) {
      out.writeUInt16BE(height, i + 5);
      out.writeUInt16BE(width, i + 7);
      return out;
    }
    i += 2 + length;
  }
  throw new Error('no SOF marker');
}

/** A GIF whose logical screen and only frame declare width × height, with a 2×2-sized LZW stream. */
export function gifDeclaring(width: number, height: number): Buffer {
  const size = Buffer.alloc(4);
  size.writeUInt16LE(width, 0);
  size.writeUInt16LE(height, 2);
  return Buffer.concat([
    Buffer.from('GIF89a', 'latin1'),
    size,
    Buffer.from([0x00, 0x00, 0x00]), // no global colour table
    Buffer.from([0x2c, 0, 0, 0, 0]), // image descriptor at 0,0
    size,
    Buffer.from([0x00, 0x02, 0x02, 0x4c, 0x01, 0x00, 0x3b]),
  ]);
}

/** A lossless WebP (VP8L) with its header's size fields set to width × height (at most 16384 each). */
export function webpDeclaring(webp: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(webp);
  const at = out.indexOf('VP8L', 12, 'latin1');
  if (at < 0) throw new Error('not a VP8L WebP');
  const sig = at + 8; // after the chunk header: 0x2f, then 14 bits width-1, 14 bits height-1, ...
  const bits = out.readUInt32LE(sig + 1);
  const rest = bits & ~0x0fffffff; // alpha and version bits
  out.writeUInt32LE((rest | ((height - 1) << 14) | (width - 1)) >>> 0, sig + 1);
  return out;
}

/** A little-endian TIFF with its ImageWidth (256) and ImageLength (257) tags set to width × height. */
export function tiffDeclaring(tiff: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(tiff);
  if (out.toString('latin1', 0, 4) !== 'II*\0') throw new Error('not a little-endian TIFF');
  const ifd = out.readUInt32LE(4);
  const count = out.readUInt16LE(ifd);
  for (let e = 0; e < count; e++) {
    const entry = ifd + 2 + e * 12;
    const tag = out.readUInt16LE(entry);
    if (tag !== 256 && tag !== 257) continue;
    const type = out.readUInt16LE(entry + 2);
    const value = tag === 256 ? width : height;
    if (type === 3) {
      out.writeUInt16LE(4, entry + 2); // SHORT → LONG, so that values above 65535 fit
      out.writeUInt32LE(value, entry + 8);
    } else out.writeUInt32LE(value, entry + 8);
  }
  return out;
}

/** The project's seeded PRNG (mulberry32), so that random files and mutations are the same every run. */
export const prng = mulberry32;

export function randomBytes(n: number, seed: number): Buffer {
  const r = prng(seed);
  return Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
}

// ---- Files whose decoding costs far more than their size (issue 11, items 3, 4 and 6) ----

const s15 = (v: number) => Math.round(v * 65536) | 0;

/**
 * An ICC v4 RGB display profile whose DToB0 tag is a multiProcessElement pipeline of `stages` 3×3
 * `matf` elements (identity matrices, all entries of the position table pointing at one element,
 * so the profile stays small). Colour management evaluates (or optimises) every stage for every
 * sample: thousands of stages turn a 28×28 image into minutes of lcms work.
 */
export function iccProfileWithStages(stages: number): Buffer {
  const matf = Buffer.alloc(12 + 9 * 4 + 3 * 4);
  matf.write('matf', 0, 'latin1');
  matf.writeUInt16BE(3, 8);
  matf.writeUInt16BE(3, 10);
  for (let i = 0; i < 3; i++) matf.writeFloatBE(1, 12 + (i * 3 + i) * 4);
  const tableAt = 16;
  const elementAt = tableAt + 8 * stages;
  const mpet = Buffer.alloc(elementAt + matf.length);
  mpet.write('mpet', 0, 'latin1');
  mpet.writeUInt16BE(3, 8);
  mpet.writeUInt16BE(3, 10);
  mpet.writeUInt32BE(stages, 12);
  for (let i = 0; i < stages; i++) {
    mpet.writeUInt32BE(elementAt, tableAt + 8 * i);
    mpet.writeUInt32BE(matf.length, tableAt + 8 * i + 4);
  }
  matf.copy(mpet, elementAt);
  const wtpt = Buffer.alloc(20);
  wtpt.write('XYZ ', 0, 'latin1');
  [0.9642, 1.0, 0.8249].forEach((v, i) => wtpt.writeInt32BE(s15(v), 8 + 4 * i));
  const tags: Array<[string, Buffer]> = [
    ['wtpt', wtpt],
    ['D2B0', mpet],
    ['A2B0', mpet],
  ];
  const headerAndTable = 128 + 4 + 12 * tags.length;
  let offset = headerAndTable;
  const table = Buffer.alloc(4 + 12 * tags.length);
  table.writeUInt32BE(tags.length, 0);
  const bodies: Buffer[] = [];
  tags.forEach(([sig, data], i) => {
    const padded = Buffer.concat([data, Buffer.alloc((4 - (data.length % 4)) % 4)]);
    table.write(sig, 4 + 12 * i, 'latin1');
    table.writeUInt32BE(offset, 8 + 12 * i);
    table.writeUInt32BE(data.length, 12 + 12 * i);
    bodies.push(padded);
    offset += padded.length;
  });
  const header = Buffer.alloc(128);
  header.writeUInt32BE(offset, 0);
  header.writeUInt32BE(0x04400000, 8); // version 4.4
  header.write('mntrRGB XYZ ', 12, 'latin1');
  header.writeUInt16BE(2024, 24);
  header.writeUInt16BE(1, 26);
  header.writeUInt16BE(1, 28);
  header.write('acsp', 36, 'latin1');
  [0.9642, 1.0, 0.8249].forEach((v, i) => header.writeInt32BE(s15(v), 68 + 4 * i));
  return Buffer.concat([header, table, ...bodies]);
}

/** `png` with an iCCP chunk holding `profile` inserted after IHDR (and any iCCP/sRGB it had removed). */
export function pngWithIcc(png: Buffer, profile: Buffer): Buffer {
  const chunks = pngChunks(png);
  const iccp = pngChunk(
    'iCCP',
    Buffer.concat([Buffer.from('hostile\0\0', 'latin1'), zlib.deflateSync(profile, { level: 9 })]),
  );
  const kept = chunks
    .filter((c) => c.type !== 'iCCP' && c.type !== 'sRGB')
    .map((c) => png.subarray(c.offset, c.offset + 12 + c.length));
  return Buffer.concat([PNG_SIGNATURE, kept[0], iccp, ...kept.slice(1)]);
}

/**
 * `png` with its image data split into `pieces` IDAT chunks (the stream itself unchanged, so the
 * file is valid): the tiny-chunk flood that makes a chunk walk cost a second of CPU.
 */
export function pngWithManyIdat(png: Buffer, pieces: number): Buffer {
  const chunks = pngChunks(png);
  const stream = Buffer.concat(
    chunks.filter((c) => c.type === 'IDAT').map((c) => png.subarray(c.offset + 8, c.offset + 8 + c.length)),
  );
  const idat: Buffer[] = [];
  for (let i = 0; i < pieces; i++) {
    const from = Math.floor((i * stream.length) / pieces);
    const to = Math.floor(((i + 1) * stream.length) / pieces);
    idat.push(pngChunk('IDAT', stream.subarray(from, to)));
  }
  const ihdr = chunks[0];
  const iend = chunks[chunks.length - 1];
  return Buffer.concat([
    PNG_SIGNATURE,
    png.subarray(ihdr.offset, ihdr.offset + 12 + ihdr.length),
    ...idat,
    png.subarray(iend.offset, iend.offset + 12 + iend.length),
  ]);
}

/** The segments of a JPEG up to EOI: marker, start offset and end offset (a scan's entropy-coded data included). */
export function jpegSegments(jpeg: Buffer): Array<{ marker: number; start: number; end: number }> {
  const out: Array<{ marker: number; start: number; end: number }> = [];
  let i = 2;
  while (i + 4 <= jpeg.length && jpeg[i] === 0xff) {
    const marker = jpeg[i + 1];
    if (marker === 0xd9) break;
    let end = i + 2 + jpeg.readUInt16BE(i + 2);
    if (marker === 0xda) {
      while (
        end + 1 < jpeg.length &&
        !(jpeg[end] === 0xff && jpeg[end + 1] !== 0 && (jpeg[end + 1] < 0xd0 || jpeg[end + 1] > 0xd7))
      )
        end++;
    }
    out.push({ marker, start: i, end });
    i = end;
  }
  return out;
}

/**
 * A progressive JPEG whose last scan is repeated until it has `scans` scans in all. libjpeg
 * warns about the bogus progression and decodes on, each scan a pass over the coefficients.
 */
export function jpegWithScans(progressive: Buffer, scans: number): Buffer {
  const segments = jpegSegments(progressive);
  const sos = segments.filter((s) => s.marker === 0xda);
  if (sos.length < 2) throw new Error('not a progressive JPEG');
  const last = sos[sos.length - 1];
  const repeated = progressive.subarray(last.start, last.end);
  const extra = Array.from({ length: Math.max(0, scans - sos.length) }, () => repeated);
  return Buffer.concat([progressive.subarray(0, last.end), ...extra, Buffer.from([0xff, 0xd9])]);
}

/** Grey 8-bit pixels of a PNG (a fixture), as raw bytes. */
async function greyPixels(png: Buffer): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(png).greyscale().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

/** A file of several frames (GIF or WebP animation, multi-page TIFF), one per fixture PNG given. */
export async function multiFrame(format: 'gif' | 'tiff' | 'webp', frames: readonly Buffer[]): Promise<Buffer> {
  const pages = await Promise.all(frames.map(greyPixels));
  const { width, height } = pages[0];
  const rgb = Buffer.alloc(width * height * 3 * pages.length);
  pages.forEach((p, f) => {
    for (let i = 0; i < width * height; i++)
      rgb.fill(p.data[i], (f * width * height + i) * 3, (f * width * height + i) * 3 + 3);
  });
  const img = sharp(rgb, { raw: { width, height: height * pages.length, channels: 3, pageHeight: height } });
  if (format === 'gif') return img.gif().toBuffer();
  if (format === 'webp') return img.webp({ lossless: true }).toBuffer();
  return img.tiff({ compression: 'deflate' }).toBuffer();
}

/**
 * An RGBA PNG whose colour channels are `hidden`'s pixels and whose alpha is 0 everywhere: composited
 * (alpha flattened onto black) it is a black square; with its alpha dropped it is `hidden`.
 */
export async function hiddenUnderAlpha(hidden: Buffer): Promise<Buffer> {
  const { data, width, height } = await greyPixels(hidden);
  const rgba = Buffer.alloc(width * height * 4);
  for (let i = 0; i < width * height; i++) rgba.set([data[i], data[i], data[i], 0], i * 4);
  return sharp(rgba, { raw: { width, height, channels: 4 } })
    .png()
    .toBuffer();
}

/**
 * An animated PNG (APNG) of two frames: the first is `first`'s image data (also the default image
 * every non-APNG decoder shows), the second `second`'s, in an fdAT chunk only APNG players decode.
 * Both PNGs must have the same size and colour type.
 */
export function apng(first: Buffer, second: Buffer): Buffer {
  const c1 = pngChunks(first);
  const ihdr = c1[0];
  const width = first.readUInt32BE(16);
  const height = first.readUInt32BE(20);
  const idatOf = (png: Buffer) =>
    Buffer.concat(
      pngChunks(png)
        .filter((c) => c.type === 'IDAT')
        .map((c) => png.subarray(c.offset + 8, c.offset + 8 + c.length)),
    );
  const actl = Buffer.alloc(8);
  actl.writeUInt32BE(2, 0); // frames
  actl.writeUInt32BE(0, 4); // loop forever
  const fctl = (seq: number) => {
    const b = Buffer.alloc(26);
    b.writeUInt32BE(seq, 0);
    b.writeUInt32BE(width, 4);
    b.writeUInt32BE(height, 8);
    b.writeUInt16BE(1, 20); // delay 1/10 s
    b.writeUInt16BE(10, 22);
    return b;
  };
  const seq2 = Buffer.alloc(4);
  seq2.writeUInt32BE(2);
  return Buffer.concat([
    PNG_SIGNATURE,
    first.subarray(ihdr.offset, ihdr.offset + 12 + ihdr.length),
    pngChunk('acTL', actl),
    pngChunk('fcTL', fctl(0)),
    pngChunk('IDAT', idatOf(first)),
    pngChunk('fcTL', fctl(1)),
    pngChunk('fdAT', Buffer.concat([seq2, idatOf(second)])),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/**
 * An interlaced PNG of size × size (a gradient, ~0.6 MB for 6300²), within the pixel limit, but
 * a second or two of decoding (libvips reads an interlaced PNG whole): a stand-in for any decode
 * that is slow although the file is within every limit.
 */
export async function slowPng(size = 6300): Promise<Buffer> {
  const raw = Buffer.alloc(size * size);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) raw[y * size + x] = (x * 7 + y * 13) & 255;
  return sharp(raw, { raw: { width: size, height: size, channels: 1 } })
    .png({ progressive: true, compressionLevel: 9 })
    .toBuffer();
}
