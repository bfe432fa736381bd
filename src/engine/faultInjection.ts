/**
 * Fault injection for the tests of worker death, honoured only by a pool started with
 * `faultInjection` (ADVSIEVE_FAULT_INJECTION=1 for the server, refused in production): an image
 * whose pixels are exactly one of these patterns makes the worker that runs its batch exit, as a
 * native crash or an out-of-memory kill would. Over HTTP a test sends it as an 8-bit grey PNG.
 * The patterns are deterministic pseudo-noise: no real image or attack produces them.
 */
export const FAULT_KINDS = ['crashOnce', 'crashAlways'] as const;
/** crashOnce: the worker dies on the batch's first run only (the retry succeeds); crashAlways: on every run. */
export type FaultKind = (typeof FAULT_KINDS)[number];

const SEEDS: Readonly<Record<FaultKind, number>> = { crashOnce: 1, crashAlways: 2 };

/** The pattern as 8-bit levels, `size` values (height × width × channels). */
export function faultLevels(kind: FaultKind, size: number): Uint8Array {
  const seed = SEEDS[kind];
  return Uint8Array.from({ length: size }, (_, i) => (i * 113 + seed * 59 + ((i * i) % 7)) % 256);
}

/** The pattern as model input, exactly as decoding an 8-bit image of those levels gives it. */
export function faultPixels(kind: FaultKind, size: number): Float32Array {
  return Float32Array.from(faultLevels(kind, size), (v) => v / 255);
}

/** The fault an image of a batch asks for, if any (`pixels` holds `count` images of `size` values). */
export function faultIn(pixels: Float32Array, count: number, size: number): FaultKind | undefined {
  const patterns = FAULT_KINDS.map((kind) => ({ kind, pixels: faultPixels(kind, size) }));
  for (let n = 0; n < count; n++) {
    const image = pixels.subarray(n * size, (n + 1) * size);
    const hit = patterns.find((p) => p.pixels.every((v, i) => v === image[i]));
    if (hit) return hit.kind;
  }
  return undefined;
}
