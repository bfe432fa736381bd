/**
 * The heavy analysis behind `spectrum` and `defend` at another radius than the calibrated one: DFTs
 * and, for `spectrum`, a PNG plot — ~18 ms of tfjs-cpu and vega work per image on the development
 * machine. Pure functions of the pixels, run on the analysis worker (src/server/analysisWorker.ts)
 * so that they never hold the event loop that serves every other request.
 */
import * as tf from '@tensorflow/tfjs';
import { highFrequencyShare, lowPassImages, powerSpectrum, radialBands } from '../engine/spectra';
import { LOG_POWER_FLOOR, radialLogProfile } from '../evaluation/analysis';
import { heatmapGrid } from '../report/plots';
import type { RadialBand, SpectrumResult } from '../schema/spectrum.type';

export type SpectrumAnalysis = Omit<SpectrumResult, 'sha256' | 'error'>;

/** Low-pass per channel; one H×W×C array per image. */
export function lowPass(
  images: readonly Float32Array[],
  [h, w, c]: readonly [number, number, number],
  radius: number,
  kind: 'ideal' | 'gaussian',
): Float32Array[] {
  if (!images.length) return [];
  const size = h * w * c;
  const all = new Float32Array(images.length * size);
  images.forEach((p, i) => all.set(p, i * size));
  const out = tf.tidy(() => lowPassImages(tf.tensor4d(all, [images.length, h, w, c]), radius, kind));
  const data = out.dataSync() as Float32Array;
  out.dispose();
  return images.map((_, i) => data.slice(i * size, (i + 1) * size));
}

/** Power spectrum per channel: radial profile (channels summed), high-frequency share, a PNG. */
export async function spectrumOf(
  pixels: Float32Array,
  [h, w, c]: readonly [number, number, number],
  cutoff: number,
): Promise<SpectrumAnalysis> {
  const { power, share } = tf.tidy(() => {
    const planes = tf.transpose(tf.tensor3d(pixels, [h, w, c]), [2, 0, 1]) as tf.Tensor3D; // [C, H, W]
    return {
      power: powerSpectrum(planes).dataSync() as Float32Array,
      share: highFrequencyShare(planes, cutoff).dataSync(),
    };
  });
  const { step, count: bands, ringOf } = radialBands(h, w);
  const sums = new Float64Array(bands);
  const bins = new Float64Array(bands);
  let total = 0;
  ringOf.forEach((b, bin) => {
    if (bin === 0) return; // DC: the mean brightness, not texture
    for (let ch = 0; ch < c; ch++) sums[b] += power[ch * h * w + bin];
    bins[b] += 1;
    for (let ch = 0; ch < c; ch++) total += power[ch * h * w + bin];
  });
  const radial: RadialBand[] = Array.from(sums, (s, b) => ({
    from: b * step,
    to: (b + 1) * step,
    power: bins[b] ? s / bins[b] : 0,
    share: total > 0 ? s / total : 0,
  }));
  const logMean = new Float32Array(h * w);
  for (let ch = 0; ch < c; ch++) {
    for (let i = 0; i < h * w; i++) logMean[i] += Math.log10(power[ch * h * w + i] + LOG_POWER_FLOOR) / c;
  }
  const names = c === 1 ? ['grey'] : ['red', 'green', 'blue'];
  const png = await heatmapGrid(
    'log power spectrum',
    names.map((label, ch) => ({ label, width: w, height: h, values: power.subarray(ch * h * w, (ch + 1) * h * w) })),
    // The sieve's cut-off as a dashed ring: what lies outside it is the energy the sieve weighs.
    { log: true, shift: true, columns: c, ring: cutoff },
  );
  return {
    width: w,
    height: h,
    radial,
    radialLogPower: Array.from(radialLogProfile(logMean, h, w)),
    cutoff,
    highFrequencyShare: Array.from(share).reduce((a, b) => a + b, 0) / share.length,
    logMagnitudePng: png.toString('base64'),
  };
}
