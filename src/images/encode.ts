/** Model-input pixels back to image files. */
import sharp from 'sharp';

/** 16-bit PNG (grey or RGB): 1/65535 steps keep all but a sliver of an adversarial perturbation. */
export async function encodePng16(pixels: Float32Array, [h, w, c]: readonly [number, number, number]): Promise<Buffer> {
  const raw = Uint16Array.from(pixels, (v) => Math.round(Math.min(1, Math.max(0, v)) * 65535));
  return sharp(raw, { raw: { width: w, height: h, channels: c as 1 | 3 } })
    .toColourspace(c === 1 ? 'grey16' : 'rgb16')
    .png()
    .toBuffer();
}
