/**
 * Training-time augmentation for the reference model: a random horizontal flip and a random shift
 * of up to `maxShift` pixels on each axis, zero-filled (the background). Both keep the label of a
 * Fashion-MNIST item; in our runs the unaugmented model's train loss kept falling while its test
 * accuracy stalled (overfitting), which this counters.
 */
export interface AugmentOptions {
  readonly flip: boolean;
  readonly maxShift: number;
}

/** Writes an augmented copy of `src` (height × width, one channel) into `dst`. */
export function augmentImage(
  src: Float32Array,
  dst: Float32Array,
  height: number,
  width: number,
  random: () => number,
  opts: AugmentOptions,
): void {
  const flip = opts.flip && random() < 0.5;
  const span = 2 * opts.maxShift + 1;
  const dy = Math.floor(random() * span) - opts.maxShift;
  const dx = Math.floor(random() * span) - opts.maxShift;
  for (let y = 0; y < height; y++) {
    const sy = y - dy;
    for (let x = 0; x < width; x++) {
      const sx0 = x - dx;
      const sx = flip ? width - 1 - sx0 : sx0;
      dst[y * width + x] = sy >= 0 && sy < height && sx >= 0 && sx < width ? src[sy * width + sx] : 0;
    }
  }
}
