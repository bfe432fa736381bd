/**
 * Why an image could not be decoded, as clients see it: a code and a message that says what is
 * wrong with the file in the service's words. Decoders' own messages (`vipspng: libpng read
 * error`, `tiff2vips: …`, sharp's `Input buffer …`) name library internals and versions, which help
 * an attacker aim and the client not at all: they travel in `detail`, logged at debug level only.
 */
export type ImageErrorCode =
  | 'UNSUPPORTED_FORMAT'
  | 'CORRUPT_IMAGE'
  | 'IMAGE_TOO_LARGE'
  | 'EMPTY_IMAGE'
  | 'IMAGE_TOO_COMPLEX'
  | 'MULTI_FRAME_IMAGE'
  | 'DECODE_TIMEOUT'
  | 'DECODE_FAILED';

export class ImageDecodeError extends Error {
  constructor(
    readonly code: ImageErrorCode,
    message: string,
    /** The decoder's own message, for the server's log (debug level); never sent to clients. */
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'ImageDecodeError';
  }
}

const FORMAT_NAMES: Readonly<Record<string, string>> = {
  png: 'PNG',
  jpeg: 'JPEG',
  webp: 'WebP',
  gif: 'GIF',
  tiff: 'TIFF',
};

/** A decoder failed on the file: CORRUPT_IMAGE with a generic message, the decoder's in `detail`. */
export function corruptImage(format: string, stage: 'header' | 'image', err: unknown): ImageDecodeError {
  const name = FORMAT_NAMES[format] ?? format;
  const message =
    stage === 'header'
      ? `the ${name} header could not be read (damaged or truncated data)`
      : `the ${name} image could not be decoded (damaged or truncated data)`;
  return new ImageDecodeError('CORRUPT_IMAGE', message, err instanceof Error ? err.message : String(err));
}
