/** The image policy of src/images/decode.ts, on images made here with sharp. */
import * as fs from 'fs';
import { PNG } from 'pngjs';
import sharp from 'sharp';
import { decodeImage, ImageDecodeError } from '../../src/images/decode';
import * as zlib from 'zlib';
import { greyPng } from '../api/hostileFiles';
import { fixtureLabels } from '../helpers/fixtures';

const GREY: [number, number, number] = [28, 28, 1];

function greyRaw(width: number, height: number, value: (x: number, y: number) => number): Buffer {
  const b = Buffer.alloc(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) b[y * width + x] = value(x, y);
  return b;
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toBeInstanceOf(ImageDecodeError);
  await expect(p).rejects.toMatchObject({ code });
}

test('an 8-bit grey PNG of the model size is taken as is, scaled to [0, 1]', async () => {
  const png = await sharp(
    greyRaw(28, 28, (x, y) => (x + y * 28) % 256),
    { raw: { width: 28, height: 28, channels: 1 } },
  )
    .png()
    .toBuffer();
  const { pixels, format } = await decodeImage(png, GREY);
  expect(format).toBe('png');
  expect(pixels).toHaveLength(784);
  expect(pixels[0]).toBe(0);
  expect(pixels[255]).toBeCloseTo(1, 6);
  expect(pixels[100]).toBeCloseTo(100 / 255, 6);
});

test.each(['jpeg', 'webp', 'gif', 'tiff'] as const)('%s decodes to the model shape', async (format) => {
  const img = await sharp(
    greyRaw(28, 28, (x) => (x < 14 ? 0 : 255)),
    { raw: { width: 28, height: 28, channels: 1 } },
  )
    .toFormat(format)
    .toBuffer();
  const { pixels, format: found } = await decodeImage(img, GREY);
  expect(found).toBe(format);
  expect(pixels[0]).toBeLessThan(0.1);
  expect(pixels[27]).toBeGreaterThan(0.9);
});

test('16-bit PNG: full scale maps to 1', async () => {
  const raw = new Uint16Array(28 * 28).map((_, i) => (i < 392 ? 0 : 65535));
  const png = await sharp(raw, { raw: { width: 28, height: 28, channels: 1 } })
    .toColourspace('grey16')
    .png()
    .toBuffer();
  expect((await sharp(png).metadata()).depth).toBe('ushort');
  const { pixels } = await decodeImage(png, GREY);
  expect(pixels[0]).toBe(0);
  expect(pixels[783]).toBe(1);
});

test('16-bit PNG keeps its precision: levels finer than 8 bits survive decoding', async () => {
  const raw = new Uint16Array(28 * 28).map((_, i) => i * 83);
  const png = await sharp(raw, { raw: { width: 28, height: 28, channels: 1 } })
    .toColourspace('grey16')
    .png()
    .toBuffer();
  const { pixels } = await decodeImage(png, GREY);
  raw.forEach((v, i) => expect(Math.abs(pixels[i] - v / 65535)).toBeLessThan(1e-6));
});

test('16-bit RGB PNG keeps its precision for colour models, and a 16-bit grey one for them too', async () => {
  const raw = new Uint16Array(28 * 28 * 3).map((_, i) => (i * 977) % 65536);
  const png = await sharp(raw, { raw: { width: 28, height: 28, channels: 3 } })
    .toColourspace('rgb16')
    .png()
    .toBuffer();
  expect((await sharp(png).metadata()).depth).toBe('ushort');
  const { pixels } = await decodeImage(png, [28, 28, 3]);
  let worst = 0;
  raw.forEach((v, i) => (worst = Math.max(worst, Math.abs(pixels[i] - v / 65535))));
  expect(worst).toBeLessThan(1e-6); // at 8 bits: up to 0.5 / 255 ≈ 0.002
  const grey = new Uint16Array(28 * 28).map((_, i) => i * 83);
  const greyPng = await sharp(grey, { raw: { width: 28, height: 28, channels: 1 } })
    .toColourspace('grey16')
    .png()
    .toBuffer();
  const asColour = (await decodeImage(greyPng, [28, 28, 3])).pixels;
  grey.forEach((v, i) => {
    for (let c = 0; c < 3; c++) expect(Math.abs(asColour[i * 3 + c] - v / 65535)).toBeLessThan(1e-6);
  });
});

test('transparent pixels become black (alpha flattened onto the background)', async () => {
  const rgba = Buffer.alloc(28 * 28 * 4);
  for (let i = 0; i < 28 * 28; i++) rgba.set(i < 392 ? [255, 255, 255, 0] : [255, 255, 255, 255], i * 4);
  const png = await sharp(rgba, { raw: { width: 28, height: 28, channels: 4 } })
    .png()
    .toBuffer();
  const { pixels } = await decodeImage(png, GREY);
  expect(pixels[0]).toBe(0); // transparent white → black
  expect(pixels[783]).toBeCloseTo(1, 5); // opaque white stays white
});

test('a wider image is scaled to fit and padded with black above and below', async () => {
  const png = await sharp(
    greyRaw(56, 28, () => 255),
    { raw: { width: 56, height: 28, channels: 1 } },
  )
    .png()
    .toBuffer();
  const { pixels, originalWidth, originalHeight } = await decodeImage(png, GREY);
  expect([originalWidth, originalHeight]).toEqual([56, 28]);
  expect(pixels[0]).toBe(0); // top padding
  expect(pixels[14 * 28 + 14]).toBeGreaterThan(0.9); // the image, centred
  expect(pixels[27 * 28]).toBe(0); // bottom padding
});

test('EXIF orientation is applied', async () => {
  // A white marker at the top-left of the stored pixels; orientation 6 means "rotate 90° clockwise".
  const png = await sharp(
    greyRaw(28, 28, (x, y) => (x < 4 && y < 4 ? 255 : 0)),
    { raw: { width: 28, height: 28, channels: 1 } },
  )
    .withMetadata({ orientation: 6 })
    .jpeg({ quality: 100 })
    .toBuffer();
  const { pixels } = await decodeImage(png, GREY);
  expect(pixels[0 * 28 + 26]).toBeGreaterThan(0.8); // now at the top-right
  expect(pixels[0]).toBeLessThan(0.2);
});

test('colour images become grey for a 1-channel model and RGB for a 3-channel one', async () => {
  const red = await sharp({ create: { width: 28, height: 28, channels: 3, background: { r: 255, g: 0, b: 0 } } })
    .png()
    .toBuffer();
  const grey = await decodeImage(red, GREY);
  expect(grey.pixels[0]).toBeGreaterThan(0.1);
  expect(grey.pixels[0]).toBeLessThan(0.5); // luminance of pure red
  const rgb = await decodeImage(red, [28, 28, 3]);
  expect(Array.from(rgb.pixels.subarray(0, 3))).toEqual([1, 0, 0]);
});

test.each([
  // [model height, width] ← [photo width, height, format]: MobileNet's 224², Inception's 299², a non-square input.
  [224, 224, 640, 480, 'jpeg'],
  [299, 299, 300, 800, 'png'],
  [160, 240, 1000, 500, 'webp'],
  [224, 224, 100, 100, 'jpeg'],
] as const)(
  'RGB models of any size: a %i×%i model gets a %i×%i %s photo fitted inside, colours kept, black bars around',
  async (mh, mw, pw, ph, format) => {
    // Left half red, right half blue: where each lands shows the fit, the bars show the padding.
    const raw = Buffer.alloc(pw * ph * 3);
    for (let y = 0; y < ph; y++)
      for (let x = 0; x < pw; x++) raw.set(x < pw / 2 ? [255, 0, 0] : [0, 0, 255], (y * pw + x) * 3);
    const file = await sharp(raw, { raw: { width: pw, height: ph, channels: 3 } })
      .toFormat(format, { quality: 100 })
      .toBuffer();
    const { pixels, originalWidth, originalHeight } = await decodeImage(file, [mh, mw, 3]);
    expect(pixels).toHaveLength(mh * mw * 3);
    expect([originalWidth, originalHeight]).toEqual([pw, ph]);
    const scale = Math.min(mw / pw, mh / ph);
    const [fw, fh] = [pw * scale, ph * scale]; // the photo's size inside the model's input
    const at = (x: number, y: number) => Array.from(pixels.subarray((y * mw + x) * 3, (y * mw + x) * 3 + 3));
    const [cx, cy] = [Math.floor(mw / 2), Math.floor(mh / 2)];
    const red = at(Math.floor(cx - fw / 4), cy);
    const blue = at(Math.floor(cx + fw / 4), cy);
    expect(red[0]).toBeGreaterThan(0.9);
    expect(red[2]).toBeLessThan(0.1);
    expect(blue[2]).toBeGreaterThan(0.9);
    expect(blue[0]).toBeLessThan(0.1);
    // Black bars where the aspect ratios differ (top and bottom, or left and right), none where they agree.
    if (fh < mh - 2) expect(at(cx, 0)).toEqual([0, 0, 0]);
    if (fw < mw - 2) expect(at(0, cy)).toEqual([0, 0, 0]);
    if (Math.abs(fw - mw) < 1 && Math.abs(fh - mh) < 1) expect(at(0, cy)[0]).toBeGreaterThan(0.9);
  },
);

test('SVG, random bytes and an empty file are refused with their codes', async () => {
  const svg = Buffer.from(
    '<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><rect width="28" height="28"/></svg>',
  );
  await expectCode(decodeImage(svg, GREY), 'UNSUPPORTED_FORMAT');
  await expectCode(
    decodeImage(Buffer.from(Array.from({ length: 500 }, (_, i) => (i * 7919) % 256)), GREY),
    'UNSUPPORTED_FORMAT',
  );
  await expectCode(decodeImage(Buffer.alloc(0), GREY), 'EMPTY_IMAGE');
});

test('a truncated PNG is CORRUPT_IMAGE', async () => {
  const png = await sharp(
    greyRaw(28, 28, (x, y) => (x * y) % 256),
    { raw: { width: 28, height: 28, channels: 1 } },
  )
    .png({ compressionLevel: 0 })
    .toBuffer();
  await expectCode(decodeImage(png.subarray(0, Math.floor(png.length / 2)), GREY), 'CORRUPT_IMAGE');
});

test('the pixel limit refuses an image from its header, before decoding', async () => {
  const png = await sharp(Buffer.alloc(300 * 200), { raw: { width: 300, height: 200, channels: 1 } })
    .png()
    .toBuffer();
  await expectCode(decodeImage(png, GREY, { maxPixels: 50_000 }), 'IMAGE_TOO_LARGE');
  await expect(decodeImage(png, GREY, { maxPixels: 60_000 })).resolves.toMatchObject({ originalWidth: 300 });
});

test('the fast path for plain model-sized PNGs gives exactly what sharp gives', async () => {
  for (const { file } of fixtureLabels()) {
    const bytes = fs.readFileSync(file);
    const fast = await decodeImage(bytes, GREY);
    const slow = await decodeImage(bytes, GREY, { fastPath: false });
    expect(fast.format).toBe('png');
    expect(Array.from(fast.pixels)).toEqual(Array.from(slow.pixels));
  }
  const rgb = Buffer.from(Array.from({ length: 28 * 28 * 3 }, (_, i) => (i * 37) % 256));
  const png = await sharp(rgb, { raw: { width: 28, height: 28, channels: 3 } })
    .png()
    .toBuffer();
  const fast = await decodeImage(png, [28, 28, 3]);
  const slow = await decodeImage(png, [28, 28, 3], { fastPath: false });
  expect(Array.from(fast.pixels)).toEqual(Array.from(slow.pixels));
  // Interlaced PNGs take sharp's path (pngjs bounds inflation only for plain ones): same pixels.
  const interlaced = await sharp(fs.readFileSync(fixtureLabels()[0].file)).png({ progressive: true }).toBuffer();
  expect(interlaced[28]).toBe(1);
  const a = await decodeImage(interlaced, GREY);
  const b = await decodeImage(fs.readFileSync(fixtureLabels()[0].file), GREY);
  expect(Array.from(a.pixels)).toEqual(Array.from(b.pixels));
});

test('RGB PNGs for a grey model: R = G = B takes the fast path with sharp’s values at all 256 levels; colour falls back', async () => {
  const read = jest.spyOn(PNG.sync, 'read');
  const levels = Buffer.alloc(28 * 28 * 3);
  for (let i = 0; i < 28 * 28; i++) levels.fill(i % 256, i * 3, i * 3 + 3);
  const grey = await sharp(levels, { raw: { width: 28, height: 28, channels: 3 } })
    .png()
    .toBuffer();
  const fast = await decodeImage(grey, GREY);
  expect(read).toHaveBeenCalledTimes(1);
  expect(Array.from(fast.pixels)).toEqual(Array.from((await decodeImage(grey, GREY, { fastPath: false })).pixels));
  const colour = Buffer.from(levels);
  colour[3 * 100] ^= 0x40; // one pixel with R ≠ G
  const png = await sharp(colour, { raw: { width: 28, height: 28, channels: 3 } })
    .png()
    .toBuffer();
  const a = await decodeImage(png, GREY);
  const b = await decodeImage(png, GREY, { fastPath: false });
  expect(Array.from(a.pixels)).toEqual(Array.from(b.pixels));
  expect(read).toHaveBeenCalledTimes(2); // tried, then left to sharp
  read.mockRestore();
});

test('a model-sized PNG with a damaged chunk still gets CORRUPT_IMAGE (the fast path falls back)', async () => {
  const bytes = Buffer.from(fs.readFileSync(fixtureLabels()[0].file));
  const idat = bytes.indexOf('IDAT');
  bytes[idat + 10] ^= 0xff; // inside the compressed data: the CRC no longer matches
  await expect(decodeImage(bytes, GREY)).rejects.toMatchObject({ code: 'CORRUPT_IMAGE' });
});

test('a model-sized PNG whose image data ends early is CORRUPT_IMAGE every time, never pixels from stale memory', async () => {
  // Three rows of 28 inflate from the IDAT: pngjs alone would unfilter the other 25 from
  // uninitialised memory (other requests' bytes), differently on each call.
  const rows = Buffer.alloc(3 * 29); // filter byte 0, black
  const png = greyPng(28, 28, zlib.deflateSync(rows));
  for (let i = 0; i < 30; i++) {
    Buffer.allocUnsafe(4096).fill(0x42); // leaves recognisable bytes in Node's buffer pool
    await expectCode(decodeImage(png, GREY), 'CORRUPT_IMAGE');
  }
});
