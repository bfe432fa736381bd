/**
 * Large numeric arrays of a calibration kept out of its JSON, in a binary file beside it
 * (calibration.bin: float32, little-endian, the arrays back to back). A 1 280-wide layer's precision
 * matrix is 1.6 M numbers: about 30 MB as JSON text, parsed at every start, against 6.5 MB here,
 * read as one buffer. In the JSON each such array becomes {"$float32": {"offset": bytes, "length":
 * numbers}}; the arrays are flat (a matrix is stored row-major already), so the length is its shape.
 *
 * Only arrays of at least SIDECAR_MIN_LENGTH numbers move: the small ones (class means, sorted
 * hold-out scores, the 128² precision matrices of the bundled fashion-cnn) stay readable in the
 * JSON, and a calibration without a large array is written as before, without a sidecar. float32
 * suffices for what moves (precision matrices and the like, used in float64 sums): it is what the
 * model's activations are computed in.
 */
import { createHash } from 'crypto';

/** Fewest numbers an array needs to be stored in the sidecar (a 256 × 256 matrix). */
export const SIDECAR_MIN_LENGTH = 65_536;

/** What the JSON records of its sidecar: the file (beside it), its size and its SHA-256. */
export interface SidecarRecord {
  readonly file: string;
  readonly format: 'float32le';
  readonly bytes: number;
  readonly sha256: string;
}

/** An array's place in the sidecar, where the JSON had the array. */
interface SidecarRef {
  readonly $float32: { readonly offset: number; readonly length: number };
}

const isNumberArray = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === 'number');

const isRef = (v: unknown): v is SidecarRef =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && '$float32' in v;

/** Maps every array and object value of `value` through `leaf` first, depth first, keeping the path for errors. */
function mapTree(value: unknown, at: string, leaf: (v: unknown, at: string) => unknown | undefined): unknown {
  const replaced = leaf(value, at);
  if (replaced !== undefined) return replaced;
  if (Array.isArray(value)) return value.map((v, i) => mapTree(v, `${at}[${i}]`, leaf));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapTree(v, `${at}.${k}`, leaf)]));
  }
  return value;
}

/**
 * The value with its large arrays replaced by references, and the bytes they went to (empty when
 * none was large). Throws when a finite number does not fit float32, naming where it is.
 */
export function extractLargeArrays<T>(value: T, minLength = SIDECAR_MIN_LENGTH): { value: T; bytes: Buffer } {
  const chunks: Buffer[] = [];
  let offset = 0;
  const slim = mapTree(value, '', (v, at) => {
    if (!isNumberArray(v) || v.length < minLength) return undefined;
    const chunk = Buffer.alloc(v.length * 4);
    v.forEach((x, i) => {
      const f = Math.fround(x);
      if (Number.isFinite(x) && !Number.isFinite(f)) throw new RangeError(`${at}[${i}] = ${x} does not fit float32`);
      chunk.writeFloatLE(f, i * 4);
    });
    chunks.push(chunk);
    const ref: SidecarRef = { $float32: { offset, length: v.length } };
    offset += chunk.length;
    return ref;
  }) as T;
  return { value: slim, bytes: Buffer.concat(chunks) };
}

/** The record of `bytes` as the sidecar `file`. */
export function sidecarRecord(file: string, bytes: Buffer): SidecarRecord {
  return { file, format: 'float32le', bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/**
 * Checks the sidecar's bytes against the record and puts its arrays back; the returned message
 * says what is wrong (the caller names the files), undefined when all is well.
 */
export function restoreLargeArrays<T>(
  value: T,
  record: SidecarRecord,
  bytes: Buffer,
): { value: T; problem?: undefined } | { value?: undefined; problem: string } {
  if (record.format !== 'float32le')
    return { problem: `format '${String(record.format)}', this advsieve reads 'float32le'` };
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (bytes.length !== record.bytes || sha256 !== record.sha256) {
    return {
      problem:
        `${bytes.length} bytes with SHA-256 ${sha256.slice(0, 12)}…, but the calibration records ${record.bytes} bytes ` +
        `with SHA-256 ${String(record.sha256).slice(0, 12)}…: the file was changed or belongs to another calibration`,
    };
  }
  let problem: string | undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const restored = mapTree(value, '', (v, at) => {
    if (!isRef(v)) return undefined;
    const { offset, length } = v.$float32;
    if (
      !(Number.isInteger(offset) && Number.isInteger(length) && offset >= 0 && length >= 0 && offset % 4 === 0) ||
      offset + length * 4 > bytes.length
    ) {
      problem ??= `${at} refers to bytes ${offset}…+${length * 4}, outside its ${bytes.length} bytes`;
      return [];
    }
    return Array.from({ length }, (_, i) => view.getFloat32(offset + i * 4, true));
  }) as T;
  return problem === undefined ? { value: restored } : { problem };
}
