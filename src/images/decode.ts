/**
 * Image files to model input. Decoding is sharp's (libvips): PNG, JPEG, WebP, GIF, TIFF, 8- or
 * 16-bit, with or without alpha; several frames or pages are refused, or each decoded as a view.
 * The format is sniffed from the bytes, never taken from a file name or MIME type. Policy, in order:
 *   1. EXIF orientation is applied;
 *   2. alpha is flattened onto black (Fashion-MNIST's background);
 *   3. colour: to grey (luminance) for 1-channel models, sRGB for 3-channel ones;
 *   4. size: scaled to fit inside the model's H×W keeping the aspect ratio, centred, padded with
 *      black ('contain'); images already H×W are left untouched;
 *   5. values: divided by 255 (8-bit) or 65535 (16-bit images keep their precision) into [0, 1].
 * A pixel limit is checked from the header before any pixel is decoded (decompression bombs).
 * Only bytes that start like one of the accepted formats reach libvips at all: SVG, PDF, HEIF and
 * the rest of its loaders are never parsed (no external entities, no fetches, less attack surface).
 * A file that starts like an accepted format but whose header cannot be read is CORRUPT_IMAGE, with
 * a message of ours (the decoder's own is logged, never sent: src/images/decodeErrors.ts).
 *
 * Work is bounded before libvips runs: chunk and scan counts (src/images/structure.ts), embedded ICC
 * profiles never applied (see convert), frames refused or counted against the pixel limit. What
 * remains is bounded in time by the decode process's budget (src/images/decodePool.ts).
 *
 * Views (decodeViews): what a gateway passes on may be shown by decoders with other policies, so
 * an image with alpha is also decoded with its alpha dropped (the colour under alpha = 0 is what
 * OpenCV shows), and a file of several frames is refused or decoded frame by frame.
 *
 * Fast path: a plain 8-bit PNG already at the model's size and colour type, with no chunk that
 * the policy would act on, needs none of the steps; pngjs decodes it in ~0.05 ms against ~1 ms for
 * sharp's two calls (header, then pixels), which was the service's largest cost per image. Its
 * result is identical (tested); anything else, or a PNG pngjs refuses, takes the sharp path.
 */
import { PNG } from 'pngjs';
import * as zlib from 'zlib';
import sharp, { Metadata, OutputInfo } from 'sharp';
import { corruptImage, ImageDecodeError } from './decodeErrors';
import { checkStructure, DEFAULT_STRUCTURE_LIMITS, StructureLimits } from './structure';

export { ImageDecodeError } from './decodeErrors';
export type { ImageErrorCode } from './decodeErrors';

export const SUPPORTED_FORMATS = ['png', 'jpeg', 'webp', 'gif', 'tiff'] as const;

/** What to do with a file of several frames or pages (animated GIF/WebP, multi-page TIFF). */
export type MultiFrame = 'refuse' | 'screen';

export interface DecodeOptions {
  /** Largest width × height accepted (default 40 megapixels); with several frames, their sum. */
  readonly maxPixels?: number;
  /** false: always decode with sharp (tests compare the two paths). Default true. */
  readonly fastPath?: boolean;
  /** 'refuse' (default): MULTI_FRAME_IMAGE; 'screen': every frame is a view. */
  readonly multiFrame?: MultiFrame;
  /** With multiFrame 'screen': most frames decoded (default 16); more is IMAGE_TOO_COMPLEX. */
  readonly maxFrames?: number;
  /** Chunk and scan limits checked before decoding (src/images/structure.ts). */
  readonly structure?: StructureLimits;
}

export const DEFAULT_MAX_FRAMES = 16;

export const DEFAULT_MAX_PIXELS = 40_000_000;

/**
 * One way a downstream decoder may see the file: `image` (a plain opaque image), `composited` (alpha
 * flattened onto black: the policy's view) and `alpha-dropped` (the colour channels as stored, as
 * OpenCV or PIL's convert('RGB') see them), per frame `frame:N` and `frame:N:alpha-dropped`.
 */
export interface ImageView {
  readonly name: string;
  /** H × W × C values in [0, 1], row-major. */
  readonly pixels: Float32Array;
}

export interface DecodedViews {
  /** The policy's view first (the composited first frame), then the others; never empty. */
  readonly views: readonly ImageView[];
  readonly format: string;
  readonly originalWidth: number;
  readonly originalHeight: number;
}

export interface DecodedImage {
  /** H × W × C values in [0, 1], row-major. */
  readonly pixels: Float32Array;
  /** The format sharp detected from the bytes. */
  readonly format: string;
  readonly originalWidth: number;
  readonly originalHeight: number;
}

/** The accepted format the bytes start like (magic numbers), if any. */
export function sniffFormat(bytes: Buffer): (typeof SUPPORTED_FORMATS)[number] | undefined {
  const starts = (magic: string, at = 0) =>
    bytes.length >= at + magic.length && bytes.toString('latin1', at, at + magic.length) === magic;
  if (starts('\x89PNG\r\n\x1a\n')) return 'png';
  if (starts('\xff\xd8\xff')) return 'jpeg';
  if (starts('GIF87a') || starts('GIF89a')) return 'gif';
  if (starts('RIFF') && starts('WEBP', 8)) return 'webp';
  if (starts('II*\0') || starts('MM\0*') || starts('II+\0') || starts('MM\0+')) return 'tiff';
  return undefined;
}

function tooLarge(width: number, height: number, maxPixels: number): ImageDecodeError {
  return new ImageDecodeError(
    'IMAGE_TOO_LARGE',
    `${width}×${height} = ${BigInt(width) * BigInt(height)} pixels exceeds the limit of ${maxPixels}`,
  );
}

/** A PNG's declared size: IHDR comes first, at fixed offsets. */
function pngSize(bytes: Buffer): { width: number; height: number } | undefined {
  if (bytes.length < 24 || bytes.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

/** A JPEG's declared size: the first start-of-frame marker's, found by walking the marker segments. */
function jpegSize(bytes: Buffer): { width: number; height: number } | undefined {
  for (let i = 2; i + 9 <= bytes.length && bytes[i] === 0xff;) {
    const marker = bytes[i + 1];
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    // SOF0…SOF15, except DHT (C4), JPG (C8) and DAC (CC), which share the range.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc)
      return { height: bytes.readUInt16BE(i + 5), width: bytes.readUInt16BE(i + 7) };
    if (marker === 0xda) return undefined; // start of scan: no frame header before it
    i += 2 + bytes.readUInt16BE(i + 2);
  }
  return undefined;
}

/** Reads the header only: format and size, checked before any pixel is decoded. */
async function probe(bytes: Buffer, maxPixels: number): Promise<Metadata & { format: string }> {
  if (bytes.length === 0) throw new ImageDecodeError('EMPTY_IMAGE', 'the image is empty (0 bytes)');
  const sniffed = sniffFormat(bytes);
  if (!sniffed) {
    throw new ImageDecodeError(
      'UNSUPPORTED_FORMAT',
      `not a supported raster image: the bytes start like none of ${SUPPORTED_FORMATS.join(', ')}`,
    );
  }
  // libpng and libjpeg refuse sizes beyond their own limits (a header declaring billions of pixels)
  // with errors that do not say so: read those two formats' declared size here first.
  const declared = sniffed === 'png' ? pngSize(bytes) : sniffed === 'jpeg' ? jpegSize(bytes) : undefined;
  if (declared && declared.width * declared.height > maxPixels)
    throw tooLarge(declared.width, declared.height, maxPixels);
  let meta: Metadata;
  try {
    // No pixel limit for the header alone (sharp's default would refuse a large image with an error
    // that does not say so); ours is checked below, and again by the decoding pipeline.
    meta = await sharp(bytes, { limitInputPixels: false, ignoreIcc: true }).metadata();
  } catch (err) {
    throw corruptImage(sniffed, 'header', err);
  }
  if (!meta.format || !(SUPPORTED_FORMATS as readonly string[]).includes(meta.format)) {
    throw new ImageDecodeError(
      'UNSUPPORTED_FORMAT',
      `format '${meta.format ?? 'unknown'}' is not accepted; send ${SUPPORTED_FORMATS.join(', ')}`,
    );
  }
  if ((meta.width ?? 0) * (meta.height ?? 0) > maxPixels) throw tooLarge(meta.width ?? 0, meta.height ?? 0, maxPixels);
  return meta as Metadata & { format: string };
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Chunks that change nothing the policy does (no palette, transparency, colour profile, gamma or EXIF). */
const PLAIN_PNG_CHUNKS = new Set(['IHDR', 'IDAT', 'IEND', 'tEXt', 'zTXt', 'iTXt', 'tIME', 'pHYs']);

/**
 * A PNG the fast path can take: 8-bit grey or RGB, H×W, not interlaced, plain chunks; for a
 * 3-channel model only RGB. An RGB file for a grey model is a candidate too: many tools save grey
 * pictures as RGB, and where every pixel has R = G = B sharp's greyscale gives exactly that value
 * (checked for all 256 levels in test/images); other RGB files leave the fast path.
 */
function plainPng(bytes: Buffer, width: number, height: number, channels: number, maxChunks = Infinity): boolean {
  if (bytes.length < 33 || !bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return false;
  if (bytes.readUInt32BE(16) !== width || bytes.readUInt32BE(20) !== height || bytes[24] !== 8) return false;
  const colourType = bytes[25];
  if (!(colourType === 2 || (colourType === 0 && channels === 1))) return false;
  // Not interlaced: pngjs bounds inflation to the image's size only for non-interlaced images (bombs).
  if (bytes[28] !== 0) return false;
  for (let offset = 8, chunks = 1; offset + 8 <= bytes.length; chunks++) {
    if (chunks > maxChunks) return false;
    const type = bytes.toString('latin1', offset + 4, offset + 8);
    if (!PLAIN_PNG_CHUNKS.has(type)) return false;
    if (type === 'IEND') return true;
    offset += 12 + bytes.readUInt32BE(offset);
  }
  return false;
}

/**
 * Whether the IDAT stream inflates to exactly the rows a width×height 8-bit image of this colour
 * type needs. pngjs does not check this: on a stream that ends early it unfilters rows from
 * uninitialised memory (Buffer.allocUnsafe), so a damaged file would decode to whatever bytes the
 * process held before (other requests' data) instead of failing. Found by test/api/fuzz.test.ts.
 */
function completeImageData(bytes: Buffer, width: number, height: number): boolean {
  const expected = height * (1 + width * (bytes[25] === 2 ? 3 : 1));
  const idat: Buffer[] = [];
  for (let offset = 8; offset + 12 <= bytes.length;) {
    const length = bytes.readUInt32BE(offset);
    if (bytes.toString('latin1', offset + 4, offset + 8) === 'IDAT') {
      idat.push(bytes.subarray(offset + 8, offset + 8 + length));
    }
    offset += 12 + length;
  }
  try {
    return zlib.inflateSync(Buffer.concat(idat), { maxOutputLength: expected }).length === expected;
  } catch {
    return false; // not zlib, truncated, or longer than the image
  }
}

function decodePlainPng(bytes: Buffer, width: number, height: number, channels: number): DecodedImage | undefined {
  if (!completeImageData(bytes, width, height)) return undefined; // sharp's path names the damage
  let rgba: Buffer;
  try {
    rgba = PNG.sync.read(bytes).data; // always RGBA, 8 bits
  } catch {
    return undefined; // damaged: sharp's path names the damage
  }
  const pixels = new Float32Array(width * height * channels);
  for (let i = 0; i < width * height; i++) {
    const r = rgba[i * 4];
    // A colour pixel for a grey model: sharp's greyscale conversion decides, not this path.
    if (channels === 1 && (rgba[i * 4 + 1] !== r || rgba[i * 4 + 2] !== r)) return undefined;
    for (let c = 0; c < channels; c++) pixels[i * channels + c] = rgba[i * 4 + c] / 255;
  }
  return { pixels, format: 'png', originalWidth: width, originalHeight: height };
}

/** One view's raw 8- or 16-bit values, from one sharp pipeline (the policy's steps 1-4). */
async function convert(
  bytes: Buffer,
  meta: Metadata & { format: string },
  [height, width, channels]: readonly [number, number, number],
  maxPixels: number,
  sixteenBit: boolean,
  view: { page: number; alpha: 'flatten' | 'drop' },
): Promise<{ data: Buffer; info: OutputInfo }> {
  try {
    // ignoreIcc: embedded colour profiles are not applied. A profile is a program for lcms (a
    // 1.5 KB PNG whose profile chains 20 000 matrix stages took 10 s of CPU for 28×28 pixels), and
    // the model was trained on pixel values, not on colorimetry: values are read as sRGB.
    let pipeline = sharp(bytes, {
      limitInputPixels: maxPixels,
      failOn: 'error',
      page: view.page,
      pages: 1,
      ignoreIcc: true,
    }).rotate();
    pipeline = view.alpha === 'flatten' ? pipeline.flatten({ background: '#000000' }) : pipeline.removeAlpha();
    // greyscale() and 'srgb' are 8-bit colour spaces; their 16-bit twins keep a 16-bit image's levels.
    if (sixteenBit) pipeline = pipeline.toColourspace(channels === 1 ? 'grey16' : 'rgb16');
    else pipeline = channels === 1 ? pipeline.greyscale() : pipeline.toColourspace('srgb');
    if (meta.width !== width || meta.height !== height) {
      pipeline = pipeline.resize(width, height, { fit: 'contain', background: '#000000' });
    }
    return await pipeline.raw({ depth: sixteenBit ? 'ushort' : 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw corruptImage(meta.format, 'image', err);
  }
}

function toModelInput(
  { data, info }: { data: Buffer; info: OutputInfo },
  [height, width, channels]: readonly [number, number, number],
  sixteenBit: boolean,
): Float32Array {
  if (info.width !== width || info.height !== height) {
    throw new ImageDecodeError('CORRUPT_IMAGE', `decoded to ${info.width}×${info.height}, expected ${width}×${height}`);
  }
  const pixels = new Float32Array(width * height * channels);
  const stride = info.channels;
  const values = sixteenBit ? new Uint16Array(data.buffer, data.byteOffset, data.length / 2) : data;
  const max = sixteenBit ? 65535 : 255;
  for (let i = 0; i < width * height; i++) {
    for (let c = 0; c < channels; c++) pixels[i * channels + c] = values[i * stride + Math.min(c, stride - 1)] / max;
  }
  return pixels;
}

function samePixels(a: Float32Array, b: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Checks a file's structure before any decoding (the fast path's included): chunk and scan counts, APNG. */
function checkBeforeDecoding(bytes: Buffer, opts: DecodeOptions): void {
  const sniffed = sniffFormat(bytes);
  if (!sniffed) return; // probe names it
  const structure = checkStructure(bytes, sniffed, opts.structure ?? DEFAULT_STRUCTURE_LIMITS);
  if (structure.animatedPng) {
    // libvips decodes only the default image; the frames a browser plays would go unscreened.
    throw new ImageDecodeError(
      'MULTI_FRAME_IMAGE',
      `the PNG is animated (APNG, ${structure.frames} frames): its frames cannot be screened, so it is refused`,
    );
  }
}

/**
 * The structural refusals whose cost on the service's own thread is bounded by a constant, not by
 * the file: a PNG's chunk count and animation (at most maxPngChunks chunk headers read, ~0.1 ms).
 * The service runs them before sending a file to a decode process, so a file refused by its
 * structure costs neither a transfer nor a decode slot, and its refusal does not depend on how busy
 * the processes are. A JPEG's scan walk is not here: it searches entropy-coded data for markers,
 * a pass over the whole file, and stays within the decode process's budget.
 */
export function refuseByPngStructure(bytes: Buffer, opts: DecodeOptions = {}): void {
  if (sniffFormat(bytes) === 'png') checkBeforeDecoding(bytes, opts);
}

/** A file of several frames: refused, or within the frame limit and (all frames together) the pixel limit. */
function checkFrames(meta: Metadata & { format: string }, pages: number, opts: DecodeOptions, maxPixels: number): void {
  if (pages <= 1) return;
  const maxFrames = opts.maxFrames ?? DEFAULT_MAX_FRAMES;
  if ((opts.multiFrame ?? 'refuse') === 'refuse') {
    throw new ImageDecodeError(
      'MULTI_FRAME_IMAGE',
      `the ${meta.format} has ${pages} frames or pages; send one image per file (multi-frame images are refused)`,
    );
  }
  if (pages > maxFrames) {
    throw new ImageDecodeError(
      'IMAGE_TOO_COMPLEX',
      `the ${meta.format} has ${pages} frames or pages, more than the limit of ${maxFrames} (maxFrames)`,
    );
  }
  // Every frame is decoded: the pixel limit bounds their sum, not one frame's.
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  if (w * h * pages > maxPixels) {
    throw new ImageDecodeError(
      'IMAGE_TOO_LARGE',
      `${pages} frames of ${w}×${h} = ${w * h * pages} pixels exceed the limit of ${maxPixels}`,
    );
  }
}

/** One frame's views: composited, and alpha-dropped when the file has alpha and that differs. */
async function frameViews(
  bytes: Buffer,
  meta: Metadata & { format: string },
  inputShape: readonly [number, number, number],
  maxPixels: number,
  sixteenBit: boolean,
  page: number,
  pages: number,
): Promise<ImageView[]> {
  const decode = async (alpha: 'flatten' | 'drop') =>
    toModelInput(
      await convert(bytes, meta, inputShape, maxPixels, sixteenBit, { page, alpha }),
      inputShape,
      sixteenBit,
    );
  const base = pages > 1 ? `frame:${page}` : meta.hasAlpha ? 'composited' : 'image';
  const composited = await decode('flatten');
  if (!meta.hasAlpha) return [{ name: base, pixels: composited }];
  const dropped = await decode('drop');
  if (samePixels(composited, dropped)) return [{ name: base, pixels: composited }];
  return [
    { name: base, pixels: composited },
    { name: pages > 1 ? `${base}:alpha-dropped` : 'alpha-dropped', pixels: dropped },
  ];
}

/**
 * Every view of the file a downstream decoder may show (see ImageView), the policy's first. Views
 * identical to another of the same frame are left out (an alpha channel that is opaque everywhere).
 */
export async function decodeViews(
  bytes: Buffer,
  inputShape: readonly [number, number, number],
  opts: DecodeOptions = {},
): Promise<DecodedViews> {
  const [height, width, channels] = inputShape;
  if (channels !== 1 && channels !== 3) throw new Error(`models with ${channels} channels are not supported (1 or 3)`);
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  checkBeforeDecoding(bytes, opts);
  if (opts.fastPath !== false && width * height <= maxPixels && plainPng(bytes, width, height, channels)) {
    const fast = decodePlainPng(bytes, width, height, channels);
    if (fast) {
      const { pixels, ...rest } = fast;
      return { ...rest, views: [{ name: 'image', pixels }] };
    }
  }
  const meta = await probe(bytes, maxPixels);
  const pages = Math.max(1, meta.pages ?? 1);
  checkFrames(meta, pages, opts, maxPixels);
  // 16-bit images keep their precision, grey and colour (adversarial images saved by `advsieve
  // attack` are 16-bit PNGs: read at 8 bits, an ε = 0.1 attack on an RGB model measured L∞ 0.102).
  const sixteenBit = meta.depth === 'ushort';
  const views: ImageView[] = [];
  for (let page = 0; page < pages; page++)
    views.push(...(await frameViews(bytes, meta, inputShape, maxPixels, sixteenBit, page, pages)));
  return { views, format: meta.format, originalWidth: meta.width ?? 0, originalHeight: meta.height ?? 0 };
}

/** The largest file, and most chunks, the service decodes on its own thread (decodeSmallPlainPng). */
export const MAIN_THREAD_PNG_BYTES = 64 * 1024;
export const MAIN_THREAD_PNG_CHUNKS = 16;
/**
 * …and the largest model input it does so for (values: height × width × channels): a 224×224 RGB
 * model's 150 528 values would take milliseconds an image on the event loop, 256 images a request.
 */
export const MAIN_THREAD_MAX_VALUES = 64 * 64 * 3;

/**
 * The fast path alone, for the service's own thread: a small plain PNG already at the model's size
 * (a model-sized 8-bit PNG, as clients of a 28×28 model send) decodes here in ~0.1 ms, against a
 * round trip to a decode process that cost a third of the service's throughput. Its work is
 * bounded by the file's size and chunk count (at most 64 KiB and 16 chunks: the 400 000-chunk PNG
 * that held the thread for a second cannot take it), the inflation by the image's size. Anything
 * else: undefined, and the file goes to a decode process.
 */
export function decodeSmallPlainPng(
  bytes: Buffer,
  [height, width, channels]: readonly [number, number, number],
): DecodedViews | undefined {
  if (bytes.length > MAIN_THREAD_PNG_BYTES || (channels !== 1 && channels !== 3)) return undefined;
  if (height * width * channels > MAIN_THREAD_MAX_VALUES) return undefined;
  if (!plainPng(bytes, width, height, channels, MAIN_THREAD_PNG_CHUNKS)) return undefined;
  const fast = decodePlainPng(bytes, width, height, channels);
  if (!fast) return undefined;
  const { pixels, ...rest } = fast;
  return { ...rest, views: [{ name: 'image', pixels }] };
}

/** The policy's view of the file (the composited first frame); see decodeViews for the others. */
export async function decodeImage(
  bytes: Buffer,
  inputShape: readonly [number, number, number],
  opts: DecodeOptions = {},
): Promise<DecodedImage> {
  const { views, ...rest } = await decodeViews(bytes, inputShape, opts);
  return { ...rest, pixels: views[0].pixels };
}
