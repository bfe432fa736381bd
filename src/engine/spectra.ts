/**
 * Spectra on every backend: the 2-D discrete Fourier transform of a batch of images as real matrix
 * products with cosine and sine DFT matrices. tf.spectral needs complex tensors, which the wasm
 * backend lacks; matrix products run fast on every backend and have exact gradients, which the
 * adaptive attacks through the low-pass defense need.
 *
 * With W = C − iS (C[k,n] = cos 2πkn/N, S[k,n] = sin 2πkn/N) and a real image X, F = W_h·X·W_w:
 * the rows are transformed by two plain products with C_w and S_w, then the columns by two plain
 * products with [C | −S] and [−S | −C] over all images at once (see dft2d).
 */
import * as tf from '@tensorflow/tfjs';

export type Spectrum = {
  /** Real part, [N, H, W]. */
  readonly re: tf.Tensor3D;
  /** Imaginary part, [N, H, W]. */
  readonly im: tf.Tensor3D;
};

function cosSin(n: number): { cos: Float32Array; sin: Float32Array } {
  const cos = new Float32Array(n * n);
  const sin = new Float32Array(n * n);
  for (let k = 0; k < n; k++) {
    for (let j = 0; j < n; j++) {
      // (k·j) mod n keeps the angle small, so float64 cos/sin stay exact to float32 precision.
      const angle = (2 * Math.PI * ((k * j) % n)) / n;
      cos[k * n + j] = Math.cos(angle);
      sin[k * n + j] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

type DftMatrices = {
  readonly cos: tf.Tensor2D;
  readonly sin: tf.Tensor2D;
  /** [C | −S], [n, 2n]: the real rows of W = C − iS applied to [A; B] (Re(W*·(U + iV)) likewise). */
  readonly forwardRe: tf.Tensor2D;
  /** [C; −S] and [S; C], [2n, n]: [P | Q] times these are Re and Im of (P + iQ)·W*. */
  readonly inverseRe: tf.Tensor2D;
  readonly inverseIm: tf.Tensor2D;
};

// Constants per size and backend (DFT matrices, dense operators), built once and kept for the
// life of the process: kept explicitly, or a tidy around the first caller would dispose them.
const constantsCache = new Map<string, unknown>();

function constants<T extends tf.Tensor | Readonly<Record<string, tf.Tensor>>>(key: string, build: () => T): T {
  const full = `${tf.getBackend()}:${key}`;
  let made = constantsCache.get(full) as T | undefined;
  if (!made) {
    made = tf.tidy(build);
    for (const t of made instanceof tf.Tensor ? [made] : Object.values(made)) tf.keep(t);
    constantsCache.set(full, made);
  }
  return made;
}

function matrices(n: number): DftMatrices {
  return constants(`dft:${n}`, (): DftMatrices => {
    const { cos, sin } = cosSin(n);
    const c = tf.tensor2d(cos, [n, n]);
    const s = tf.tensor2d(sin, [n, n]);
    const negS = tf.neg(s);
    return {
      cos: c,
      sin: s,
      forwardRe: tf.concat([c, negS], 1),
      inverseRe: tf.concat([c, negS], 0),
      inverseIm: tf.concat([s, c], 0),
    };
  });
}

/*
 * Every step is a plain matrix product, a concatenation or a transpose. Slices are avoided: on
 * wasm a strided Slice copies element by element, and the four slices of one [N, 2H, 2W] product
 * took 71 % of the kernel time of the high-frequency shares at 224×224 (tf.profile, batch 8); a
 * batched product against a tiled matrix ran at ~2 GFLOP/s where a plain one runs at ~17-22.
 */

/** y [n, h, k] → [h, n·k]: the H axis first, so that one plain product applies a factor along it. */
function columnsOf(y: tf.Tensor3D): tf.Tensor2D {
  const [n, h, k] = y.shape;
  return tf.reshape(tf.transpose(y, [1, 0, 2]), [h, n * k]);
}

/** [m, n·k] → [n, m, k]. */
function fromColumns(c: tf.Tensor2D, n: number, k: number): tf.Tensor3D {
  return tf.transpose(tf.reshape(c, [c.shape[0], n, k]), [1, 0, 2]) as tf.Tensor3D;
}

/** Column transforms at least this long, of a length with a factor ≥ 4, run factored (columnDft). */
export const FACTORED_DFT_MIN = 64;

/** n = n1 · n2 with n1 ≤ n2 as close to √n as n allows, or undefined (n prime, or its factors < 4). */
function factorPair(n: number): [number, number] | undefined {
  let best: [number, number] | undefined;
  for (let a = 4; a * a <= n; a++) if (n % a === 0) best = [a, n / a];
  return best;
}

/** [P | −Q] and [Q | P] for F = P + iQ = exp(sign·2πi·kn/N), each [N, 2N]: Re and Im of F·Z from [Zr; Zi]. */
function complexRows(n: number, sign: 1 | -1): { re: tf.Tensor2D; im: tf.Tensor2D } {
  return constants(`rows:${n}:${sign}`, () => {
    const { cos, sin } = cosSin(n);
    const re = new Float32Array(2 * n * n);
    const im = new Float32Array(2 * n * n);
    for (let k = 0; k < n; k++)
      for (let j = 0; j < n; j++) {
        const [p, q] = [cos[k * n + j], sign * sin[k * n + j]];
        [re[k * 2 * n + j], re[k * 2 * n + n + j]] = [p, -q];
        [im[k * 2 * n + j], im[k * 2 * n + n + j]] = [q, p];
      }
    return { re: tf.tensor2d(re, [n, 2 * n]), im: tf.tensor2d(im, [n, 2 * n]) };
  });
}

/** The twiddles of a factored DFT, exp(sign·2πi·k1·n2/N): real and imaginary parts, [n1, n2, 1]. */
function twiddles(n1: number, n2: number, sign: 1 | -1): { re: tf.Tensor3D; im: tf.Tensor3D } {
  return constants(`twiddle:${n1}x${n2}:${sign}`, () => {
    const n = n1 * n2;
    const re = new Float32Array(n);
    const im = new Float32Array(n);
    for (let k1 = 0; k1 < n1; k1++)
      for (let j = 0; j < n2; j++) {
        const angle = (2 * Math.PI * ((k1 * j) % n)) / n;
        re[k1 * n2 + j] = Math.cos(angle);
        im[k1 * n2 + j] = sign * Math.sin(angle);
      }
    return { re: tf.tensor3d(re, [n1, n2, 1]), im: tf.tensor3d(im, [n1, n2, 1]) };
  });
}

/** Re and Im of F·Z along the columns, F dense [N, N]: two plain products on [Zr; Zi]. */
function denseColumnDft(z: tf.Tensor2D, n: number, sign: 1 | -1): { re: tf.Tensor2D; im: tf.Tensor2D } {
  const f = complexRows(n, sign);
  return { re: tf.matMul(f.re, z), im: tf.matMul(f.im, z) };
}

/**
 * F·Z along the columns of Z = Zr + iZi [N, K], F = exp(sign·2πi·kn/N) [N, N]. Dense below
 * FACTORED_DFT_MIN or for a prime N; above, Cooley–Tukey in two stages of products (N = N1·N2: a
 * length-N1 DFT over every n2, twiddles, a length-N2 DFT over every k1), 4N(N1 + N2) multiply-adds
 * per column instead of 4N² — at 224 = 14·16, 7.5× fewer. Index maps: n = N2·n1 + n2 (a reshape)
 * and k = k1 + N1·k2 (the second stage's rows come out k2 major, which is k's order); between the
 * stages, the twiddles and one transpose. Re and im stay apart throughout: on wasm, splitting a
 * stacked product or reversing it cost more than the products saved.
 */
function columnDft(zr: tf.Tensor2D, zi: tf.Tensor2D, sign: 1 | -1): { re: tf.Tensor2D; im: tf.Tensor2D } {
  const [n, k] = zr.shape;
  const factors = n >= FACTORED_DFT_MIN ? factorPair(n) : undefined;
  if (!factors) return denseColumnDft(tf.concat([zr, zi], 0), n, sign);
  const [n1, n2] = factors;
  const first = denseColumnDft(tf.concat([tf.reshape(zr, [n1, n2 * k]), tf.reshape(zi, [n1, n2 * k])], 0), n1, sign);
  const t = twiddles(n1, n2, sign);
  const yr = tf.reshape(first.re, [n1, n2, k]);
  const yi = tf.reshape(first.im, [n1, n2, k]);
  const tr = tf.sub(tf.mul(yr, t.re), tf.mul(yi, t.im));
  const ti = tf.add(tf.mul(yr, t.im), tf.mul(yi, t.re));
  const byK1 = (y: tf.Tensor) => tf.reshape(tf.transpose(y, [1, 0, 2]), [n2, n1 * k]);
  const second = denseColumnDft(tf.concat([byK1(tr), byK1(ti)], 0) as tf.Tensor2D, n2, sign);
  return { re: tf.reshape(second.re, [n, k]), im: tf.reshape(second.im, [n, k]) };
}

/**
 * The 2-D DFT of real images x [N, H, W] in column layout: re and im as [H, N, W]. With W = C − iS:
 * rows first, A = X·C_w and B = X·S_w (X·W_w = A − iB); then along H,
 * Re F = C_h·A − S_h·B = [C | −S]·[A; B] and Im F = −(S_h·A + C_h·B) = [−S | −C]·[A; B].
 * The layout is what the products leave; masks and the inverse work on it as it is. With `half`,
 * the columns 0 … ⌊W/2⌋ only: re and im [H, N, halfWidth(W)].
 */
function dftColumns(x: tf.Tensor3D, half = false): Spectrum {
  const [n, h, w] = x.shape;
  // The half spectrum (see halfWidth) takes C_w and S_w's first halfWidth(W) columns only.
  const row = half ? halfMatrices(w) : matrices(w);
  const m = row.cos.shape[1];
  const rows = tf.reshape(x, [n * h, w]);
  const a = tf.reshape(tf.matMul(rows, row.cos), [n, h, m]) as tf.Tensor3D;
  const b = tf.reshape(tf.matMul(rows, row.sin), [n, h, m]) as tf.Tensor3D;
  // X·W_w = A − iB, then W_h (sign −1) along H.
  const f = columnDft(columnsOf(a), tf.neg(columnsOf(b)), -1);
  return { re: tf.reshape(f.re, [h, n, m]) as tf.Tensor3D, im: tf.reshape(f.im, [h, n, m]) as tf.Tensor3D };
}

/**
 * The inverse of dftColumns' layout, real part: x [N, H, W] = Re(W*_h · F · W*_w) / (H·W). Rows
 * first: (P + iQ)(C + iS) = U + iV with U = [P | Q]·[C; −S], V = [P | Q]·[S; C]; then along H,
 * Re[(C + iS)(U + iV)] = C·U − S·V = [C | −S]·[U; V].
 */
function idftColumns(f: Spectrum): tf.Tensor3D {
  const [h, n, w] = f.re.shape;
  const row = matrices(w);
  const col = matrices(h);
  const pq = tf.reshape(tf.concat([f.re, f.im], 2), [h * n, 2 * w]);
  const u = tf.reshape(tf.matMul(pq, row.inverseRe), [h, n * w]);
  const v = tf.reshape(tf.matMul(pq, row.inverseIm), [h, n * w]);
  const re = fromColumns(tf.matMul(col.forwardRe, tf.concat([u, v], 0)), n, w);
  return tf.div(re, h * w) as tf.Tensor3D;
}

/** Forward 2-D DFT of real images x [N, H, W] (no normalisation, as numpy.fft.fft2), re and im [N, H, W]. */
export function dft2d(x: tf.Tensor3D): Spectrum {
  return tf.tidy((): Spectrum => {
    const f = dftColumns(x);
    return {
      re: tf.transpose(f.re, [1, 0, 2]) as tf.Tensor3D,
      im: tf.transpose(f.im, [1, 0, 2]) as tf.Tensor3D,
    };
  });
}

/** Inverse 2-D DFT of a spectrum [N, H, W], real part: x = Re(W*_h · F · W*_w) / (H·W). */
export function idft2d(f: Spectrum): tf.Tensor3D {
  return tf.tidy(() =>
    idftColumns({ re: tf.transpose(f.re, [1, 0, 2]) as tf.Tensor3D, im: tf.transpose(f.im, [1, 0, 2]) as tf.Tensor3D }),
  );
}

/*
 * The half spectrum. A real image's spectrum is Hermitian, F[−ky, −kx] = conj F[ky, kx], so the
 * columns kx = 0 … ⌊W/2⌋ hold all of it: the batch path (the high-frequency shares and the low-pass)
 * computes only those, half the products of the full DFT. A column other than 0 and the Nyquist
 * column (W even) stands for its mirror too, so it counts twice (halfWeight). The masks used here
 * depend on |frequency| only, so a masked half spectrum is still a real image's.
 */

/** Columns of the half spectrum of width w. */
function halfWidth(w: number): number {
  return Math.floor(w / 2) + 1;
}

/** How many bins of the full spectrum column kx of the half spectrum stands for. */
function halfWeight(kx: number, w: number): number {
  return kx === 0 || 2 * kx === w ? 1 : 2;
}

type HalfMatrices = {
  /** C_w and S_w's first halfWidth columns, [w, m]: the row transform of the half spectrum. */
  readonly cos: tf.Tensor2D;
  readonly sin: tf.Tensor2D;
  /** [c·C; −c·S] over the half columns and the output columns, [2m, w]: the inverse's row transform. */
  readonly inverse: tf.Tensor2D;
};

function halfMatrices(w: number): HalfMatrices {
  return constants(`half:${w}`, (): HalfMatrices => {
    const half = halfWidth(w);
    const cos = new Float32Array(w * half);
    const sin = new Float32Array(w * half);
    const inverse = new Float32Array(2 * half * w);
    for (let x = 0; x < w; x++) {
      for (let k = 0; k < half; k++) {
        const angle = (2 * Math.PI * ((k * x) % w)) / w;
        cos[x * half + k] = Math.cos(angle);
        sin[x * half + k] = Math.sin(angle);
        inverse[k * w + x] = halfWeight(k, w) * Math.cos(angle);
        inverse[(half + k) * w + x] = -halfWeight(k, w) * Math.sin(angle);
      }
    }
    return {
      cos: tf.tensor2d(cos, [w, half]),
      sin: tf.tensor2d(sin, [w, half]),
      inverse: tf.tensor2d(inverse, [2 * half, w]),
    };
  });
}

/**
 * x [N, H, W] from a (masked) half spectrum in column layout: along H first, G·W*_h = Hr + iHi with
 * [Hr; Hi] = [[C, −S], [S, C]]·[Gr; Gi]; then along W, x = Σ_kx c_kx·Re(H·e^{2πi kx x/W}) / (H·W)
 * = [Hr | Hi]·[c·C; −c·S] / (H·W).
 */
function halfIdftColumns(g: Spectrum, w: number): tf.Tensor3D {
  const [h, n, m] = g.re.shape;
  const row = halfMatrices(w);
  const along = columnDft(tf.reshape(g.re, [h, n * m]), tf.reshape(g.im, [h, n * m]), 1); // W*_h
  const hr = tf.reshape(along.re, [h * n, m]);
  const hi = tf.reshape(along.im, [h * n, m]);
  const x = tf.reshape(tf.matMul(tf.concat([hr, hi], 1), row.inverse), [h, n, w]);
  return tf.div(tf.transpose(x, [1, 0, 2]), h * w) as tf.Tensor3D;
}

/** A mask over the bins [H·W], its half columns in column layout, [H, 1, halfWidth(W)]. */
function halfColumnMask(mask: Float32Array, h: number, w: number): tf.Tensor3D {
  const m = halfWidth(w);
  const half = new Float32Array(h * m);
  for (let y = 0; y < h; y++) for (let k = 0; k < m; k++) half[y * m + k] = mask[y * w + k];
  return tf.tensor3d(half, [h, 1, m]);
}

/** |F|² / (H·W) of a half spectrum, as [N, H·halfWidth(W)] (each plane's half bins row-major). */
function halfPowerRows(f: Spectrum, w: number): tf.Tensor2D {
  const [h, n, m] = f.re.shape;
  const power = tf.div(tf.add(tf.square(f.re), tf.square(f.im)), h * w);
  return tf.reshape(tf.transpose(power, [1, 0, 2]), [n, h * m]);
}

/** |F|², [N, H, W], normalised by H·W so that it sums to H·W times the mean squared pixel (Parseval). */
export function powerSpectrum(x: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    const { re, im } = dft2d(x);
    const [, h, w] = x.shape;
    return tf.div(tf.add(tf.square(re), tf.square(im)), h * w) as tf.Tensor3D;
  });
}

/**
 * Normalised radial frequency of each DFT bin, [H·W] row-major, in cycles per pixel: bin k of n
 * has frequency k/n for k ≤ n/2 and (k − n)/n above (numpy.fft.fftfreq); the radius is
 * √(fy² + fx²), 0 at DC, 0.5 at the Nyquist frequency of one axis, up to ≈0.707 in the corners.
 */
export function radialFrequencyGrid(h: number, w: number): Float32Array {
  const freq = (k: number, n: number) => (k <= n / 2 ? k : k - n) / n;
  const r = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) r[y * w + x] = Math.hypot(freq(y, h), freq(x, w));
  }
  return r;
}

/**
 * Rings of radial frequency, each 1/min(H, W) wide, from DC outwards: bin i lies in ring
 * ⌊r_i · min(H, W)⌋ (ring 0 holds the DC). The rings of `spectrum`'s radial profile and of the
 * radial log-power profiles that `compare` correlates with a class's mean.
 */
export function radialBands(h: number, w: number): { step: number; count: number; ringOf: Int32Array } {
  const r = radialFrequencyGrid(h, w);
  const step = 1 / Math.min(h, w);
  const count = Math.ceil(Math.max(...r) / step + 1e-9);
  return { step, count, ringOf: Int32Array.from(r, (f) => Math.min(count - 1, Math.floor(f / step))) };
}

export type LowPassKind = 'ideal' | 'gaussian';

/**
 * A low-pass mask over the DFT bins, [H·W] row-major: 'ideal' keeps bins with radial frequency
 * ≤ radius (cycles/pixel); 'gaussian' weighs each bin by exp(−r² / 2·radius²), without the ideal
 * mask's ringing. Masks depend on |frequency| only, so the filtered image stays real.
 */
export function lowPassMask(h: number, w: number, radius: number, kind: LowPassKind = 'ideal'): Float32Array {
  if (!(radius > 0)) throw new RangeError(`low-pass radius must be > 0 cycles/pixel, got ${radius}`);
  const r = radialFrequencyGrid(h, w);
  return r.map((f) => (kind === 'ideal' ? (f <= radius + 1e-9 ? 1 : 0) : Math.exp(-(f * f) / (2 * radius * radius))));
}

/**
 * Low-pass filters a batch of images x [N, H, W]: DFT, multiply by the mask, inverse DFT. Linear in
 * x, so its exact gradient flows through tfjs's autodiff (adaptive attacks through the defense).
 */
export function lowPass(x: tf.Tensor3D, radius: number, kind: LowPassKind = 'ideal'): tf.Tensor3D {
  return tf.tidy(() => lowPassOfHalfSpectrum(dftColumns(x, true), x.shape[2], radius, kind));
}

/** The low-passed images [N, H, W] from their half spectrum (dftColumns(x, true)) of width w. */
function lowPassOfHalfSpectrum(f: Spectrum, w: number, radius: number, kind: LowPassKind): tf.Tensor3D {
  const h = f.re.shape[0];
  const mask = halfColumnMask(lowPassMask(h, w, radius, kind), h, w);
  return halfIdftColumns({ re: tf.mul(f.re, mask) as tf.Tensor3D, im: tf.mul(f.im, mask) as tf.Tensor3D }, w);
}

/**
 * Per image, the share of spectral energy above a radial cut-off (cycles/pixel), DC excluded: the
 * mean brightness would otherwise dominate the total and hide the high band. [N] values in [0, 1].
 * An image whose AC energy is below 1e-6 of its total (a constant image, where float32 rounding
 * leaves only residue in the AC bins) scores ≈ 0 rather than a ratio of rounding errors. The
 * high-frequency energy sieve compares this against clean images of the predicted class.
 */
export function highFrequencyShare(x: tf.Tensor3D, cutoff: number): tf.Tensor1D {
  return tf.tidy(() => {
    const [n, h, w] = x.shape;
    const r = radialFrequencyGrid(h, w);
    const high = tf.tensor1d(r.map((f) => (f > cutoff ? 1 : 0)));
    const nonDc = tf.tensor1d(r.map((f) => (f > 0 ? 1 : 0)));
    const power = tf.reshape(powerSpectrum(x), [n, h * w]);
    const highEnergy = tf.sum(tf.mul(power, high), 1);
    const ac = tf.sum(tf.mul(power, nonDc), 1);
    const floor = tf.add(tf.mul(tf.sum(power, 1), 1e-6), 1e-12);
    return tf.div(highEnergy, tf.maximum(ac, floor)) as tf.Tensor1D;
  });
}

/** Rec. 601 luma weights of R, G and B: the brightness the eye (and a JPEG encoder) weighs most. */
const LUMA = [0.299, 0.587, 0.114] as const;

/**
 * The planes the high-frequency sieve reads: a grey image's one channel; an RGB image's R, G, B and
 * then its luminance. A perturbation spread evenly over the colours stands out in the luminance,
 * where natural images keep less high-frequency energy than in any one colour; one confined to a
 * colour stands out in that channel. [N, H, W, C] → [N, H, W, C'] (C' = 4 for RGB).
 */
export function sieveChannels(x: tf.Tensor4D): tf.Tensor4D {
  if (x.shape[3] !== 3) return x;
  return tf.tidy(() => tf.concat([x, tf.sum(tf.mul(x, tf.tensor1d([...LUMA])), 3, true)], 3) as tf.Tensor4D);
}

/**
 * dftColumns' spectrum of N RGB images' planes ([H, N·3, M], an image's channels adjacent) with each
 * image's luminance spectrum after its channels: [H, N·4, M], the layout of sieveChannels' planes.
 */
function withLuminanceSpectrum(f: Spectrum, n: number): Spectrum {
  const add = (t: tf.Tensor3D) => {
    const [h, , m] = t.shape;
    const byImage = tf.reshape(t, [h, n, 3, m]);
    const y = tf.sum(tf.mul(byImage, tf.reshape(tf.tensor1d([...LUMA]), [1, 1, 3, 1])), 2, true);
    return tf.reshape(tf.concat([byImage, y], 2), [h, n * 4, m]) as tf.Tensor3D;
  };
  return { re: add(f.re), im: add(f.im) };
}

/** [N, H, W, C] → [N·C, H, W]: one plane per image and channel, channels of an image adjacent. */
function planes(x: tf.Tensor4D): tf.Tensor3D {
  const [n, h, w, c] = x.shape;
  return c === 1 ? tf.reshape(x, [n, h, w]) : tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [n * c, h, w]);
}

/** [N·C, H, W] → [N, H, W, C]. */
function fromPlanes(p: tf.Tensor, [n, h, w, c]: readonly number[]): tf.Tensor4D {
  return (
    c === 1 ? tf.reshape(p, [n, h, w, 1]) : tf.transpose(tf.reshape(p, [n, c, h, w]), [0, 2, 3, 1])
  ) as tf.Tensor4D;
}

/**
 * Images of at most this many pixels per channel (Fashion-MNIST's 784) take the screening extras
 * as dense operators: the low-pass filter and the high band of the DFT are linear maps, so on small
 * images one plain product [N, H·W] × [H·W, ·] does what the DFT's six products, tile and slices do,
 * ~4× faster on wasm (bench:detect). Larger images keep the DFT: the dense matrix grows as (H·W)².
 */
export const DENSE_SPECTRA_MAX_PIXELS = 1024;

/** A dense operator: a constant per size and parameters (see constants). */
function dense(key: string, build: () => tf.Tensor2D): tf.Tensor2D {
  return constants(`dense:${key}`, build);
}

/** The operator applied to every basis image e_i, row i: then y = x · M for flattened x. */
function basisResponses(h: number, w: number, op: (basis: tf.Tensor3D) => tf.Tensor): tf.Tensor2D {
  return tf.reshape(op(tf.reshape(tf.eye(h * w), [h * w, h, w]) as tf.Tensor3D), [h * w, -1]) as tf.Tensor2D;
}

/**
 * Low-pass per channel of images x [N, H, W, C], clipped back to [0, 1]: the low-pass defense.
 * Differentiable (the mask is linear; the clip passes gradients inside the range).
 */
export function lowPassImages(x: tf.Tensor4D, radius: number, kind: LowPassKind = 'ideal'): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    let filtered: tf.Tensor;
    if (h * w <= DENSE_SPECTRA_MAX_PIXELS) {
      const m = dense(`lowpass:${h}x${w}:${radius}:${kind}`, () =>
        basisResponses(h, w, (b) => lowPass(b, radius, kind)),
      );
      filtered = tf.matMul(tf.reshape(planes(x), [n * c, h * w]), m);
    } else {
      filtered = lowPass(planes(x), radius, kind);
    }
    return tf.clipByValue(fromPlanes(filtered, [n, h, w, c]), 0, 1);
  });
}

/**
 * highFrequencyShare per image, cut-off and sieve channel (sieveChannels: RGB's luminance too) of x
 * [N, H, W, C]: [N, K, C'] for K cut-offs (calibration compares several cut-offs; serving uses one).
 */
export function highFrequencyShareImages(images: tf.Tensor4D, cutoffs: readonly number[]): tf.Tensor3D {
  return tf.tidy(() => {
    const x = sieveChannels(images);
    const [n, h, w, c] = x.shape;
    const k = cutoffs.length;
    const r = radialFrequencyGrid(h, w);
    const flat = tf.reshape(planes(x), [n * c, h * w]) as tf.Tensor2D;
    if (h * w > DENSE_SPECTRA_MAX_PIXELS)
      return shareOfPower(halfPowerRows(dftColumns(planes(x), true), w), flat, [n, h, w, c], cutoffs);
    // Small images: only the bins above the lowest cut-off: their DFT coefficients as one product, scaled so that
    // squared they are the power spectrum's bins.
    const lowest = Math.min(...cutoffs);
    const bins = Array.from(r.keys()).filter((b) => r[b] > lowest);
    const coefficients = dense(`band:${h}x${w}:${lowest}`, () => {
      const { re, im } = dft2d(tf.reshape(tf.eye(h * w), [h * w, h, w]) as tf.Tensor3D);
      const pick = tf.tensor1d(Int32Array.from(bins), 'int32');
      const scale = 1 / Math.sqrt(h * w);
      return tf.mul(
        tf.concat(
          [tf.gather(tf.reshape(re, [h * w, h * w]), pick, 1), tf.gather(tf.reshape(im, [h * w, h * w]), pick, 1)],
          1,
        ),
        scale,
      ) as tf.Tensor2D;
    });
    const f = tf.matMul(flat, coefficients); // [N·C, 2·bins]: real parts, then imaginary parts
    const power = tf.add(
      tf.square(tf.slice(f, [0, 0], [-1, bins.length])),
      tf.square(tf.slice(f, [0, bins.length], [-1, bins.length])),
    );
    const masks = new Float32Array(bins.length * k);
    bins.forEach((bin, i) => cutoffs.forEach((cut, j) => (masks[i * k + j] = r[bin] > cut ? 1 : 0)));
    const high = tf.matMul(power as tf.Tensor2D, tf.tensor2d(masks, [bins.length, k]));
    // Parseval: the AC power is the energy of the image less its mean.
    const ac = tf.sum(tf.square(tf.sub(flat, tf.mean(flat, 1, true))), 1, true) as tf.Tensor2D;
    return shareOf(high as tf.Tensor2D, ac, flat, [n, c, k]);
  });
}

/** high / AC energy per plane, [N·C, K] → [N, K, C]; an image with (almost) no AC energy scores ≈ 0. */
function shareOf(high: tf.Tensor2D, ac: tf.Tensor2D, flat: tf.Tensor2D, [n, c, k]: number[]): tf.Tensor3D {
  const floor = tf.add(tf.mul(tf.sum(tf.square(flat), 1, true), 1e-6), 1e-12);
  const share = tf.div(high, tf.maximum(ac, floor));
  return tf.transpose(tf.reshape(share, [n, c, k]), [0, 2, 1]) as tf.Tensor3D;
}

/** highFrequencyShareImages from the planes' half-spectrum power [N·C, H·halfWidth(W)]: the power above each cut-off and above DC, one product. */
function shareOfPower(
  power: tf.Tensor2D,
  flat: tf.Tensor2D,
  [n, h, w, c]: number[],
  cutoffs: readonly number[],
): tf.Tensor3D {
  const k = cutoffs.length;
  const r = radialFrequencyGrid(h, w);
  const m = halfWidth(w);
  // Over the half bins, each weighted by the bins of the full spectrum it stands for.
  const masks = new Float32Array(h * m * (k + 1));
  for (let y = 0; y < h; y++) {
    for (let kx = 0; kx < m; kx++) {
      const freq = r[y * w + kx];
      const bin = y * m + kx;
      const weight = halfWeight(kx, w);
      cutoffs.forEach((cut, j) => (masks[bin * (k + 1) + j] = freq > cut ? weight : 0));
      masks[bin * (k + 1) + k] = freq > 0 ? weight : 0;
    }
  }
  const sums = tf.matMul(power, tf.tensor2d(masks, [h * m, k + 1]));
  const high = tf.slice(sums, [0, 0], [n * c, k]) as tf.Tensor2D;
  const ac = tf.slice(sums, [0, k], [n * c, 1]) as tf.Tensor2D;
  return shareOf(high, ac, flat, [n, c, k]);
}

/**
 * A batch's spectral extras at once (src/engine/model.ts): the high-frequency shares and the
 * low-passed images. Above DENSE_SPECTRA_MAX_PIXELS both come from one DFT of the planes, which
 * each would otherwise compute (at 224×224×3, ~40 ms per image on wasm).
 */
export function spectralExtras(
  x: tf.Tensor4D,
  cutoffs: readonly number[],
  lowPassSpec?: { readonly radius: number; readonly kind: LowPassKind },
): { hfShare?: tf.Tensor3D; filtered?: tf.Tensor4D } {
  const [n, h, w, c] = x.shape;
  if (h * w <= DENSE_SPECTRA_MAX_PIXELS || !cutoffs.length || !lowPassSpec) {
    return {
      hfShare: cutoffs.length ? highFrequencyShareImages(x, cutoffs) : undefined,
      filtered: lowPassSpec ? lowPassImages(x, lowPassSpec.radius, lowPassSpec.kind) : undefined,
    };
  }
  return tf.tidy(() => {
    // One DFT of the channels serves both; RGB's luminance spectrum is the same weighted sum of
    // theirs (the DFT is linear), so it costs no transform of its own.
    const p = planes(x);
    const f = dftColumns(p, true);
    const filtered = lowPassOfHalfSpectrum(f, w, lowPassSpec.radius, lowPassSpec.kind);
    const xs = sieveChannels(x);
    const cs = xs.shape[3];
    const sieve = cs === c ? f : withLuminanceSpectrum(f, n);
    return {
      hfShare: shareOfPower(halfPowerRows(sieve, w), tf.reshape(planes(xs), [n * cs, h * w]), [n, h, w, cs], cutoffs),
      filtered: tf.clipByValue(fromPlanes(filtered, [n, h, w, c]), 0, 1),
    };
  });
}
