/**
 * The mean log-power spectrum of each class's clean calibration images, what `compare` holds a
 * perturbation's spectrum against ("High frequency patterns play a key role in the generation of
 * adversarial examples": a perturbation towards a class resembles that class's spectrum). Stored
 * small in the calibration file: per class a radial profile (mean log10 power per ring,
 * src/evaluation/analysis.ts radialLogProfile) and a map pooled to at most MAP_SIDE² bins of
 * frequency, so that a 224×224 model's ten classes take ~10 000 numbers, not 500 000.
 */
import { logPowerSpectra, radialLogProfile } from '../evaluation/analysis';

/** Most bins a side of a stored class map has; smaller inputs keep their full spectrum. */
export const MAP_SIDE = 32;

export interface ClassSpectra {
  /** The input's height and width the spectra were taken at. */
  readonly height: number;
  readonly width: number;
  /** Clean images per class the means are over: a class with none has no spectrum. */
  readonly images: number[];
  /** Per class: mean log10 power per ring of radialBands(height, width), channels averaged, ring 0 the DC's. */
  readonly radial: number[][];
  /** The maps' size: min(height, MAP_SIDE) × min(width, MAP_SIDE). */
  readonly mapHeight: number;
  readonly mapWidth: number;
  /** Per class: the mean log10 power spectrum pooled to mapHeight × mapWidth, row-major, DC at index 0. */
  readonly maps: number[][];
}

/**
 * A row-major H×W spectrum (DC at 0) averaged into ph×pw bins by signed frequency: frequency
 * index k (k − H above H/2) goes to ⌊k·ph/H⌋ mod ph, so the pooled grid is itself a spectrum with
 * its DC at 0 and a frequency f at f·ph bins from it, which fftShift and the cut-off ring expect.
 */
export function poolSpectrum(values: ArrayLike<number>, h: number, w: number, ph: number, pw: number): Float32Array {
  const sums = new Float64Array(ph * pw);
  const bins = new Float64Array(ph * pw);
  const pooled = (k: number, n: number, p: number) => {
    const signed = k <= n / 2 ? k : k - n;
    return (((Math.floor((signed * p) / n) % p) + p) % p) as number;
  };
  for (let y = 0; y < h; y++) {
    const py = pooled(y, h, ph);
    for (let x = 0; x < w; x++) {
      const i = py * pw + pooled(x, w, pw);
      sums[i] += values[y * w + x];
      bins[i]++;
    }
  }
  return Float32Array.from(sums, (s, i) => (bins[i] ? s / bins[i] : 0));
}

const rounded = (values: ArrayLike<number>) => Array.from(values, (v) => Number(v.toPrecision(5)));

/** The class spectra of `count` labelled images (H×W×C each, values in [0, 1]). */
export async function classSpectra(
  pixels: Float32Array,
  labels: ArrayLike<number>,
  count: number,
  shape: readonly [number, number, number],
  numClasses: number,
): Promise<ClassSpectra> {
  const [h, w, c] = shape;
  const size = h * w * c;
  const sums = Array.from({ length: numClasses }, () => new Float64Array(h * w));
  const images = new Array<number>(numClasses).fill(0);
  // In chunks, so that a large input's spectra are summed as they come instead of all held at once.
  const chunk = Math.max(1, Math.floor((1 << 22) / size));
  for (let start = 0; start < count; start += chunk) {
    const n = Math.min(chunk, count - start);
    const spectra = await logPowerSpectra(pixels.subarray(start * size, (start + n) * size), n, shape);
    for (let k = 0; k < n; k++) {
      const label = labels[start + k];
      const s = sums[label];
      for (let j = 0; j < h * w; j++) s[j] += spectra[k * h * w + j];
      images[label]++;
    }
  }
  const [mapHeight, mapWidth] = [Math.min(h, MAP_SIDE), Math.min(w, MAP_SIDE)];
  const means = sums.map((s, k) => (images[k] ? s.map((v) => v / images[k]) : undefined));
  return {
    height: h,
    width: w,
    images,
    radial: means.map((m) => (m ? rounded(radialLogProfile(m, h, w)) : [])),
    mapHeight,
    mapWidth,
    maps: means.map((m) => (m ? rounded(poolSpectrum(m, h, w, mapHeight, mapWidth)) : [])),
  };
}

const finiteRow = (row: unknown, length: number) =>
  Array.isArray(row) && row.length === length && row.every((v) => typeof v === 'number' && Number.isFinite(v));

/**
 * Why a calibration's class spectrum of class `k` cannot be used for an input of `shape` (a file
 * written before they were stored, another input size, a class without images, a damaged entry);
 * undefined when it can.
 */
export function classSpectrumProblem(
  spectra: ClassSpectra | undefined,
  k: number,
  [h, w]: readonly number[],
  rings: number,
): string | undefined {
  if (spectra === undefined) {
    return 'the calibration stores no class spectra (written before they were recorded): run `npx advsieve calibrate --add-class-spectra` with the options it was made with';
  }
  if (spectra.height !== h || spectra.width !== w)
    return `the class spectra are of ${spectra.height}×${spectra.width} inputs, the model takes ${h}×${w}`;
  if (!(spectra.images?.[k] > 0)) return `the calibration had no clean images of class ${k}`;
  if (!finiteRow(spectra.radial?.[k], rings) || !finiteRow(spectra.maps?.[k], spectra.mapHeight * spectra.mapWidth)) {
    return `the calibration's class spectrum of class ${k} is damaged (not ${rings} rings and a ${spectra.mapHeight}×${spectra.mapWidth} map of finite numbers); calibrate again`;
  }
  return undefined;
}
