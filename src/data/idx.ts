/**
 * Reader for the IDX format of (Fashion-)MNIST: a big-endian header (magic 0x0000 TTDD, T the
 * element type, D the number of dimensions), D uint32 sizes, then the elements. Files may be
 * gzip-compressed, as Debian's `dataset-fashion-mnist` ships them.
 */
import * as fs from 'fs';
import * as zlib from 'zlib';

export interface IdxArray {
  readonly dims: readonly number[];
  /** The elements, row-major; (Fashion-)MNIST files are all unsigned bytes. */
  readonly data: Uint8Array;
}

export class IdxFormatError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'IdxFormatError';
  }
}

const UBYTE = 0x08;

export function parseIdx(buffer: Buffer, file = '<buffer>'): IdxArray {
  if (buffer.length < 4) throw new IdxFormatError(file, `too short for an IDX header (${buffer.length} bytes)`);
  if (buffer[0] !== 0 || buffer[1] !== 0) throw new IdxFormatError(file, 'bad magic number: not an IDX file');
  const type = buffer[2];
  const rank = buffer[3];
  if (type !== UBYTE)
    throw new IdxFormatError(file, `element type 0x${type.toString(16)} is not supported (only unsigned byte, 0x08)`);
  if (rank < 1 || rank > 4) throw new IdxFormatError(file, `unsupported number of dimensions ${rank}`);
  const headerBytes = 4 + 4 * rank;
  if (buffer.length < headerBytes)
    throw new IdxFormatError(file, `truncated header: ${buffer.length} of ${headerBytes} bytes`);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(buffer.readUInt32BE(4 + 4 * i));
  const count = dims.reduce((a, b) => a * b, 1);
  const available = buffer.length - headerBytes;
  if (available < count) {
    throw new IdxFormatError(
      file,
      `truncated: header declares ${dims.join('×')} = ${count} elements, file holds ${available}`,
    );
  }
  if (available > count) throw new IdxFormatError(file, `${available - count} trailing bytes after ${count} elements`);
  return { dims, data: new Uint8Array(buffer.buffer, buffer.byteOffset + headerBytes, count) };
}

/** Reads `file`, or `file.gz` when only the compressed one exists. */
export function readIdxFile(file: string): IdxArray {
  const candidates = file.endsWith('.gz') ? [file] : [file, `${file}.gz`];
  const found = candidates.find((f) => fs.existsSync(f));
  if (!found) throw Object.assign(new Error(`${candidates.join(' or ')} not found`), { code: 'ENOENT' });
  let bytes = fs.readFileSync(found);
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = zlib.gunzipSync(bytes);
    } catch (err) {
      throw new IdxFormatError(found, `corrupt gzip stream (${(err as Error).message})`);
    }
  }
  return parseIdx(bytes, found);
}
