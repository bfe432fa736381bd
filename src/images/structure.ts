/**
 * Bounded structural checks on an image file before libvips sees it: the parts of a file whose
 * count, not size, makes decoding expensive. A 4.9 MB PNG of 400 000 tiny IDAT chunks costs a
 * second of chunk walking; a progressive JPEG of thousands of scans is a pass over the coefficients
 * per scan; an animated PNG's frames are never decoded by libvips at all (it shows only the default
 * image, while a browser plays the animation). Each walk here stops at its limit, so its own cost
 * is bounded by the limit and the file's size, and a file over a limit is refused with
 * IMAGE_TOO_COMPLEX naming the limit. Frame counts of GIF, WebP and TIFF come from libvips' header
 * read (src/images/decode.ts).
 */
import { ImageDecodeError } from './decodeErrors';

export interface StructureLimits {
  /** Most chunks a PNG may have (a 5 MiB PNG written in libpng's 8 KiB IDAT chunks has ~640). */
  readonly maxPngChunks: number;
  /** Most scans (SOS segments) a JPEG may have (libjpeg's progressive files have ~10). */
  readonly maxJpegScans: number;
}

export const DEFAULT_STRUCTURE_LIMITS: StructureLimits = { maxPngChunks: 4096, maxJpegScans: 128 };

export interface Structure {
  /** Frames an animated PNG declares (acTL); 1 for everything else this module walks. */
  readonly frames: number;
  /** The file is an animated PNG: libvips decodes only its default image, never its frames. */
  readonly animatedPng: boolean;
}

function tooComplex(what: string, limit: string, value: number): ImageDecodeError {
  return new ImageDecodeError(
    'IMAGE_TOO_COMPLEX',
    `the image has more ${what} than the limit of ${value} (${limit}): refused before decoding`,
  );
}

/** Walks a PNG's chunks (at most `maxPngChunks`): the count, and an acTL's frame count. */
function pngStructure(bytes: Buffer, limits: StructureLimits): Structure {
  let chunks = 0;
  let frames = 1;
  let animatedPng = false;
  for (let offset = 8; offset + 8 <= bytes.length;) {
    if (++chunks > limits.maxPngChunks) throw tooComplex('PNG chunks', 'maxPngChunks', limits.maxPngChunks);
    const length = bytes.readUInt32BE(offset);
    const type = bytes.toString('latin1', offset + 4, offset + 8);
    if (type === 'acTL') {
      animatedPng = true;
      if (offset + 12 <= bytes.length) frames = Math.max(1, bytes.readUInt32BE(offset + 8));
    }
    if (type === 'IEND') break;
    offset += 12 + length;
  }
  return { frames, animatedPng };
}

/**
 * Counts a JPEG's scans (at most `maxJpegScans`): marker segments are skipped by their length, a
 * scan's entropy-coded data by looking for the next marker (0xFF not followed by 0x00 or a restart
 * marker). One pass over the file at most.
 */
function jpegStructure(bytes: Buffer, limits: StructureLimits): Structure {
  let scans = 0;
  let i = 2;
  while (i + 4 <= bytes.length) {
    if (bytes[i] !== 0xff) return { frames: 1, animatedPng: false }; // damaged: libjpeg names it
    const marker = bytes[i + 1];
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    if (marker === 0xd9) break; // end of image
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      i += 2; // markers without a length
      continue;
    }
    i += 2 + bytes.readUInt16BE(i + 2);
    if (marker !== 0xda) continue;
    if (++scans > limits.maxJpegScans) throw tooComplex('JPEG scans', 'maxJpegScans', limits.maxJpegScans);
    while (i + 1 < bytes.length) {
      const next = bytes.indexOf(0xff, i);
      if (next < 0 || next + 1 >= bytes.length) {
        i = bytes.length;
        break;
      }
      const after = bytes[next + 1];
      if (after !== 0 && !(after >= 0xd0 && after <= 0xd7)) {
        i = next;
        break;
      }
      i = next + 2;
    }
  }
  return { frames: 1, animatedPng: false };
}

/** The structure of a PNG or JPEG, checked against the limits; other formats: one frame, nothing walked. */
export function checkStructure(bytes: Buffer, format: string, limits: StructureLimits): Structure {
  if (format === 'png') return pngStructure(bytes, limits);
  if (format === 'jpeg') return jpegStructure(bytes, limits);
  return { frames: 1, animatedPng: false };
}
