/**
 * IEEE 754 half-precision (binary16) numbers as base64, for reference activations kept in a JSON
 * file: half the bytes of float32, and an 11-bit mantissa (relative error ≤ 2⁻¹¹ ≈ 0.05 %) is far
 * below the spread of the distances a nearest-neighbour search compares. Values round to nearest
 * even; beyond ±65 504 they become ±Infinity, below 2⁻²⁴ zero.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** One float32 value's binary16 bits. */
export function toHalfBits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0); // Infinity, NaN
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    // Subnormal: the implicit 1 made explicit, shifted into place, rounded to nearest even.
    const m = mantissa | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let bits = m >>> shift;
    if (rest > half || (rest === half && bits & 1)) bits++;
    return sign | bits;
  }
  let bits = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa raises the exponent, which is the right rounding too.
  if (rest > 0x1000 || (rest === 0x1000 && bits & 1)) bits++;
  return sign | bits;
}

/** The value of binary16 bits. */
export function fromHalfBits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >>> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** float32 values as base64 of little-endian binary16. */
export function encodeFloat16(values: ArrayLike<number>): string {
  const b = Buffer.alloc(values.length * 2);
  for (let i = 0; i < values.length; i++) b.writeUInt16LE(toHalfBits(values[i]), i * 2);
  return b.toString('base64');
}

/** encodeFloat16's inverse, as float32. */
export function decodeFloat16(base64: string): Float32Array {
  const b = Buffer.from(base64, 'base64');
  if (b.length % 2) throw new RangeError(`float16 data must have an even number of bytes, got ${b.length}`);
  const out = new Float32Array(b.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = fromHalfBits(b.readUInt16LE(i * 2));
  return out;
}
