/**
 * The research claims, measured on our model:
 *  - spectra: does the perturbation's power spectrum resemble the mean spectrum of clean images of
 *    the class it pushes towards more than that of other classes ("High frequency patterns play a
 *    key role in the generation of adversarial examples")?
 *  - trajectory: per layer, how far adversarial activations are from the origin class's and the
 *    target class's expectation, relative to clean images of those classes;
 *  - promotion vs suppression ("Interpreting adversarial examples by activation promotion and
 *    suppression"): did the attack win by lowering the true class's logit or by raising the target's?
 */
import * as tf from '@tensorflow/tfjs';
import type { ActivationDistanceState } from '../detectors/activationDistance';
import { squaredDistance } from '../detectors/detector';
import { powerSpectrum, radialBands } from '../engine/spectra';

/** Mean over channels of log10 power spectra, per image: count × (H·W). */
export async function logPowerSpectra(
  pixels: Float32Array,
  count: number,
  shape: readonly number[],
): Promise<Float32Array> {
  const [h, w, c] = shape;
  const out = new Float32Array(count * h * w);
  // 256 Fashion-MNIST images a chunk; as many pixels a chunk at other sizes (4 at 224×224×3).
  const chunk = Math.max(1, Math.floor((256 * 28 * 28) / (h * w * c)));
  for (let start = 0; start < count; start += chunk) {
    const n = Math.min(chunk, count - start);
    const t = tf.tidy(() => {
      const x = tf.tensor4d(pixels.subarray(start * h * w * c, (start + n) * h * w * c), [n, h, w, c]);
      const planes = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [n * c, h, w]) as tf.Tensor3D;
      const p = tf.reshape(powerSpectrum(planes), [n, c, h * w]);
      return tf.mean(tf.div(tf.log(tf.add(p, LOG_POWER_FLOOR)), Math.LN10), 1);
    });
    out.set((await t.data()) as Float32Array, start * h * w);
    t.dispose();
  }
  return out;
}

/** Mean of the rows of `rows` (count × width) per class; classes without rows get zeros. */
export function classMeans(
  rows: Float32Array,
  width: number,
  classes: ArrayLike<number>,
  numClasses: number,
): Float32Array[] {
  const sums = Array.from({ length: numClasses }, () => new Float64Array(width));
  const counts = new Array(numClasses).fill(0);
  for (let i = 0; i < classes.length; i++) {
    const r = rows.subarray(i * width, (i + 1) * width);
    const s = sums[classes[i]];
    for (let j = 0; j < width; j++) s[j] += r[j];
    counts[classes[i]]++;
  }
  return sums.map((s, c) => Float32Array.from(s, (v) => (counts[c] ? v / counts[c] : 0)));
}

/** Pearson correlation, skipping index 0 (the DC bin, which brightness dominates). */
export function pearsonNoDc(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length - 1;
  let ma = 0;
  let mb = 0;
  for (let i = 1; i < a.length; i++) {
    ma += a[i];
    mb += b[i];
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 1; i < a.length; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : 0;
}

/** Added to power before its log: a bin without power reads −10, not −∞. */
export const LOG_POWER_FLOOR = 1e-10;

/**
 * Mean log10 power of each ring of radialBands(h, w), from one H·W log spectrum (a row of
 * logPowerSpectra); ring 0 holds the DC, which pearsonNoDc leaves out. Rotation-averaged, so a
 * class's mean fits in a few numbers whatever the input size.
 */
export function radialLogProfile(logSpectrum: ArrayLike<number>, h: number, w: number): Float32Array {
  const { count, ringOf } = radialBands(h, w);
  const sums = new Float64Array(count);
  const bins = new Float64Array(count);
  ringOf.forEach((b, i) => {
    sums[b] += logSpectrum[i];
    bins[b]++;
  });
  // A ring without a bin (only on oblong grids) takes the value of the ring inside it.
  const out = new Float32Array(count);
  for (let b = 0; b < count; b++) out[b] = bins[b] ? sums[b] / bins[b] : b ? out[b - 1] : 0;
  return out;
}

/**
 * How much a perturbation's radial log-power profile looks like the clean mean profile of class
 * `target`: their pearsonNoDc correlation (the evaluation's spectrum claim, on rings), and the
 * target's rank among the classes that have a profile (1: no class correlates better).
 */
export function spectrumSimilarity(
  perturbation: ArrayLike<number>,
  classProfiles: ReadonlyArray<ArrayLike<number> | undefined>,
  target: number,
): { similarity: number; rank: number } {
  const corr = classProfiles.map((p) => (p ? pearsonNoDc(perturbation, p) : undefined));
  const similarity = corr[target] ?? 0;
  return { similarity, rank: 1 + corr.filter((c, k) => k !== target && c !== undefined && c > similarity).length };
}

export interface SpectrumClaim {
  /** Mean correlation of perturbation spectra with the clean mean spectrum of their target class. */
  readonly targetCorrelation: number;
  /** ... and with the clean mean spectra of the other classes (origin excluded). */
  readonly otherCorrelation: number;
  /** Share of adversarial images whose perturbation correlates best with the target class. */
  readonly targetIsBest: number;
  readonly images: number;
}

export function spectrumClaim(
  perturbationSpectra: Float32Array,
  width: number,
  origin: ArrayLike<number>,
  target: ArrayLike<number>,
  cleanClassSpectra: Float32Array[],
): SpectrumClaim {
  let t = 0;
  let o = 0;
  let best = 0;
  const n = origin.length;
  for (let i = 0; i < n; i++) {
    const p = perturbationSpectra.subarray(i * width, (i + 1) * width);
    const corr = cleanClassSpectra.map((s) => pearsonNoDc(p, s));
    const others = corr.filter((_, c) => c !== target[i] && c !== origin[i]);
    t += corr[target[i]];
    o += others.reduce((a, b) => a + b, 0) / Math.max(others.length, 1);
    if (others.every((v) => corr[target[i]] > v)) best++;
  }
  return {
    targetCorrelation: n ? t / n : 0,
    otherCorrelation: n ? o / n : 0,
    targetIsBest: n ? best / n : 0,
    images: n,
  };
}

export interface TrajectoryLayer {
  readonly layer: string;
  /** Mean distances, each relative to the clean mean distance of that class at that layer. */
  readonly cleanToOrigin: number;
  readonly cleanToTarget: number;
  readonly adversarialToOrigin: number;
  readonly adversarialToTarget: number;
  /** Share of adversarial images whose nearest class expectation at this layer is the target. */
  readonly nearestIsTarget: number;
}

export function trajectoryClaim(
  state: ActivationDistanceState,
  clean: ReadonlyArray<Readonly<Record<string, Float32Array>>>,
  adversarial: ReadonlyArray<Readonly<Record<string, Float32Array>>>,
  origin: ArrayLike<number>,
  target: ArrayLike<number>,
): TrajectoryLayer[] {
  return state.layers.map((layer) => {
    const mu = state.expectations[layer];
    const rel = (a: Float32Array, c: number) => Math.sqrt(squaredDistance(a, mu[c])) / state.scale[layer][c];
    let co = 0;
    let ct = 0;
    let ao = 0;
    let at = 0;
    let nearest = 0;
    const n = origin.length;
    for (let i = 0; i < n; i++) {
      co += rel(clean[i][layer], origin[i]);
      ct += rel(clean[i][layer], target[i]);
      ao += rel(adversarial[i][layer], origin[i]);
      at += rel(adversarial[i][layer], target[i]);
      const d = mu.map((m) => squaredDistance(adversarial[i][layer], m));
      if (d.indexOf(Math.min(...d)) === target[i]) nearest++;
    }
    const k = Math.max(n, 1);
    return {
      layer,
      cleanToOrigin: co / k,
      cleanToTarget: ct / k,
      adversarialToOrigin: ao / k,
      adversarialToTarget: at / k,
      nearestIsTarget: nearest / k,
    };
  });
}

export type PromotionSuppressionType = 'suppression' | 'promotion' | 'balanced';

/** The drop's share of (drop⁺ + rise⁺) at or above which a change is suppression-dominated. */
export const SUPPRESSION_SHARE = 2 / 3;
/** ... and at or below which it is promotion-dominated; between the two it is balanced. */
export const PROMOTION_SHARE = 1 / 3;

/**
 * The share rule: only the positive parts count (a true class that rose did not help the attack);
 * when neither the drop nor the rise is positive the change is balanced.
 */
export function promotionSuppressionType(drop: number, rise: number): PromotionSuppressionType {
  const d = Math.max(drop, 0);
  const r = Math.max(rise, 0);
  const share = d + r > 0 ? d / (d + r) : 0.5;
  return share >= SUPPRESSION_SHARE ? 'suppression' : share <= PROMOTION_SHARE ? 'promotion' : 'balanced';
}

/**
 * Drop of the true class's logit against rise of the adversarial class's logit, typed by
 * promotionSuppressionType.
 */
export function promotionSuppression(
  cleanLogits: Float32Array,
  advLogits: Float32Array,
  trueClass: number,
  advClass: number,
): { drop: number; rise: number; type: PromotionSuppressionType } {
  const drop = cleanLogits[trueClass] - advLogits[trueClass];
  const rise = advLogits[advClass] - cleanLogits[advClass];
  return { drop, rise, type: promotionSuppressionType(drop, rise) };
}

/** Share of a layer's units counted as one class's against another's (at least one unit). */
export const CLASS_UNIT_SHARE = 0.05;

/**
 * The units of a layer that tell class `of` from class `against`: those where the clean class
 * expectation of `of` exceeds that of `against` most, at most max(1, ⌈share · width⌉) of them, and
 * only where it exceeds it at all. On a 10-class logits layer that is one logit: most often the
 * class's own, but the one whose clean means differ most between the two classes wins (on
 * fashion-cnn, 3 of 32 attacked pairs typed the logits layer otherwise than the logits themselves).
 */
export function classUnits(
  expectations: readonly (readonly number[])[],
  of: number,
  against: number,
  share = CLASS_UNIT_SHARE,
): number[] {
  const [mo, ma] = [expectations[of], expectations[against]];
  const k = Math.max(1, Math.ceil(share * mo.length));
  return Array.from(mo.keys())
    .filter((j) => mo[j] > ma[j])
    .sort((i, j) => mo[j] - ma[j] - (mo[i] - ma[i]) || i - j)
    .slice(0, k);
}

export interface LayerPromotionSuppression {
  readonly layer: string;
  /** How far the mean activation of the true class's units fell from the clean image to the adversarial one. */
  readonly drop: number;
  /** How far the mean activation of the adversarial class's units rose. */
  readonly rise: number;
  readonly type: PromotionSuppressionType;
  readonly trueUnits: number[];
  readonly adversarialUnits: number[];
}

/**
 * Promotion–suppression at one layer's units ("Interpreting adversarial examples by activation
 * promotion and suppression", Xu et al. 2019): the true class's units (classUnits(true, adv)) and
 * the adversarial class's (classUnits(adv, true)) — disjoint by construction — and how their mean
 * activation moved, typed by the logits' rule. A set without units counts as no change.
 */
export function layerPromotionSuppression(
  layer: string,
  expectations: readonly (readonly number[])[],
  clean: ArrayLike<number>,
  adversarial: ArrayLike<number>,
  trueClass: number,
  advClass: number,
  share = CLASS_UNIT_SHARE,
): LayerPromotionSuppression {
  const trueUnits = classUnits(expectations, trueClass, advClass, share);
  const adversarialUnits = classUnits(expectations, advClass, trueClass, share);
  const meanOf = (a: ArrayLike<number>, units: number[]) =>
    units.length ? units.reduce((sum, j) => sum + a[j], 0) / units.length : 0;
  const drop = meanOf(clean, trueUnits) - meanOf(adversarial, trueUnits);
  const rise = meanOf(adversarial, adversarialUnits) - meanOf(clean, adversarialUnits);
  return { layer, drop, rise, type: promotionSuppressionType(drop, rise), trueUnits, adversarialUnits };
}
