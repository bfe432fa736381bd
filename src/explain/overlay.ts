/**
 * A Grad-CAM map drawn over its image: upsampled (bilinear) from the layer's resolution to the
 * model's input, coloured from dark blue (no evidence) through green and yellow to red (the most),
 * and blended half and half with the image as the model saw it (grey images shown in grey).
 */

/** Bilinear resampling of an h × w map to H × W, sample centres aligned. */
export function upsample(map: Float32Array, h: number, w: number, outH: number, outW: number): Float32Array {
  const out = new Float32Array(outH * outW);
  for (let y = 0; y < outH; y++) {
    const fy = Math.min(Math.max(((y + 0.5) * h) / outH - 0.5, 0), h - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, h - 1);
    const dy = fy - y0;
    for (let x = 0; x < outW; x++) {
      const fx = Math.min(Math.max(((x + 0.5) * w) / outW - 0.5, 0), w - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, w - 1);
      const dx = fx - x0;
      const top = map[y0 * w + x0] * (1 - dx) + map[y0 * w + x1] * dx;
      const bottom = map[y1 * w + x0] * (1 - dx) + map[y1 * w + x1] * dx;
      out[y * outW + x] = top * (1 - dy) + bottom * dy;
    }
  }
  return out;
}

/** A heat colour for v in [0, 1]: blue → cyan → green → yellow → red. */
export function heatColour(v: number): [number, number, number] {
  const t = Math.min(1, Math.max(0, v)) * 4;
  const seg = Math.min(3, Math.floor(t));
  const f = t - seg;
  switch (seg) {
    case 0:
      return [0, f, 1];
    case 1:
      return [0, 1, 1 - f];
    case 2:
      return [f, 1, 0];
    default:
      return [1, 1 - f, 0];
  }
}

/** H × W × 3 values in [0, 1]: the map over the image (H × W × C, C = 1 or 3). */
export function overlay(
  map: Float32Array,
  [mh, mw]: readonly [number, number],
  image: Float32Array,
  [h, w, c]: readonly [number, number, number],
): Float32Array {
  const up = upsample(map, mh, mw, h, w);
  const out = new Float32Array(h * w * 3);
  for (let p = 0; p < h * w; p++) {
    const colour = heatColour(up[p]);
    for (let k = 0; k < 3; k++) out[p * 3 + k] = 0.5 * image[p * c + (c === 3 ? k : 0)] + 0.5 * colour[k];
  }
  return out;
}
