/**
 * JPEG re-encoding: each image is written as an 8-bit baseline JPEG at a chosen quality and read
 * back. The quantisation of the DCT coefficients drops the fine, high-frequency detail where small
 * perturbations live (Dziugaite, Ghahramani & Roy 2016, "A study of the effect of JPG compression
 * on adversarial images"; Das et al. 2017, "Keeping the Bad Guys Out: Protecting and Vaccinating
 * Deep Learning with JPEG Compression"). Encoding is sharp's (libjpeg-turbo), outside tf, so there
 * is no applyDifferentiable: adaptive attacks use BPDA or a differentiable JPEG approximation.
 */
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { checkImages, checkOption, Defense, isIntegerIn } from './defense';

export interface JpegOptions {
  /** libjpeg quality, 1 to 100; default 75 (Das et al. 2017 ensemble over 20 to 80). */
  readonly quality?: number;
}

export const DEFAULT_JPEG_QUALITY = 75;

// Images encoded at once: sharp works on libuv's thread pool, which this keeps busy without
// holding every encoded image of a large batch in memory at the same time.
const CONCURRENCY = 8;

export class JpegDefense implements Defense {
  readonly name = 'jpeg' as const;
  readonly quality: number;

  constructor(options: JpegOptions = {}) {
    const { quality = DEFAULT_JPEG_QUALITY } = options;
    checkOption(isIntegerIn(quality, 1, 100), this.name, 'quality', 'an integer from 1 to 100', quality);
    this.quality = quality;
  }

  async apply(x: tf.Tensor4D): Promise<tf.Tensor4D> {
    checkImages(this.name, x);
    const [n, h, w, c] = x.shape;
    const size = h * w * c;
    const input = (await x.data()) as Float32Array;
    const output = new Float32Array(n * size);
    for (let start = 0; start < n; start += CONCURRENCY) {
      const batch = [];
      for (let i = start; i < Math.min(n, start + CONCURRENCY); i++) {
        batch.push(
          this.roundTrip(input.subarray(i * size, (i + 1) * size), h, w, c).then((px) => output.set(px, i * size)),
        );
      }
      await Promise.all(batch);
    }
    return tf.tensor4d(output, [n, h, w, c]);
  }

  /** One image, H×W×C values in [0, 1], through an 8-bit JPEG and back. */
  private async roundTrip(pixels: Float32Array, h: number, w: number, c: number): Promise<Float32Array> {
    const bytes = Buffer.from(Uint8Array.from(pixels, (v) => Math.round(Math.min(1, Math.max(0, v)) * 255)));
    const jpeg = await sharp(bytes, { raw: { width: w, height: h, channels: c as 1 | 3 } })
      .jpeg({ quality: this.quality })
      .toBuffer();
    let decoder = sharp(jpeg);
    decoder = c === 1 ? decoder.greyscale() : decoder.toColourspace('srgb');
    const { data, info } = await decoder.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    const out = new Float32Array(h * w * c);
    const stride = info.channels;
    for (let i = 0; i < h * w; i++) {
      for (let k = 0; k < c; k++) out[i * c + k] = data[i * stride + Math.min(k, stride - 1)] / 255;
    }
    return out;
  }
}
