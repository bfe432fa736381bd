/**
 * High-frequency energy sieve: the share of an image's spectral energy above a radial cut-off,
 * compared with clean images *predicted as the same class*, so that a naturally textured class
 * (shirts, bags) is not flagged for its texture. Adversarial perturbations are mostly
 * high-frequency patterns ("High frequency patterns play a key role in the generation of
 * adversarial examples", Zhou et al. 2021; Wang et al. 2020, "High-frequency component helps
 * explain the generalization of CNNs"), so they raise this share above the class's clean range.
 *
 * Score: the largest over channels (an RGB image's R, G, B and luminance: sieveChannels in
 * src/engine/spectra.ts) of (log share − mean) / std of the clean log shares of the predicted class (log, because shares are skewed and spread over decades). The cut-off is chosen
 * at calibration among the engine's candidates as the one that best separates clean from
 * adversarial training images (AUROC).
 */
import { auroc } from '../evaluation/metrics';
import * as tf from '@tensorflow/tfjs';
import {
  argmax,
  classRows,
  byClass,
  Detector,
  MIN_CLASS_IMAGES,
  FitData,
  ImageFeatures,
  meanStd,
  stateTensors,
} from './detector';

/** Candidate cut-offs in cycles/pixel (0.5 is one axis's Nyquist frequency, ≈0.707 the corners). */
export const HF_CUTOFF_CANDIDATES = [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6] as const;

export interface HighFrequencyState {
  readonly cutoff: number;
  /** Per predicted class, per channel: mean and std of clean log shares. */
  readonly classes: ReadonlyArray<ReadonlyArray<{ mean: number; std: number }>>;
  /** AUROC of each candidate cut-off on the calibration attacks, for the record. */
  readonly cutoffAuroc: Readonly<Record<string, number>>;
}

const logShare = (s: number) => Math.log(s + 1e-9);

function fitAt(clean: readonly ImageFeatures[], cutoff: number, numClasses: number): HighFrequencyState['classes'] {
  const predicted = clean.map((f) => argmax(f.probs));
  const channels = clean[0].hfShare.get(cutoff)!.length;
  const all = Array.from({ length: channels }, (_, ch) =>
    meanStd(clean.map((f) => logShare(f.hfShare.get(cutoff)![ch]))),
  );
  return byClass(predicted, numClasses).map((members) =>
    Array.from({ length: channels }, (_, ch) => {
      // A class the model never predicted on clean data falls back to all images' statistics.
      if (members.length < MIN_CLASS_IMAGES) return all[ch];
      const m = meanStd(members.map((i) => logShare(clean[i].hfShare.get(cutoff)![ch])));
      return { mean: m.mean, std: Math.max(m.std, 1e-6) };
    }),
  );
}

function scoreAt(classes: HighFrequencyState['classes'], cutoff: number, f: ImageFeatures): number {
  const share = f.hfShare.get(cutoff);
  if (!share) throw new Error(`high-frequency share at cut-off ${cutoff} was not computed for this image`);
  const stats = classes[argmax(f.probs)];
  if (share.length !== stats.length)
    throw new Error(
      `the calibration's high-frequency sieve has ${stats.length} channels, this image ${share.length}: calibrate the model again (RGB models gained a luminance channel)`,
    );
  let best = -Infinity;
  share.forEach((s, ch) => (best = Math.max(best, (logShare(s) - stats[ch].mean) / stats[ch].std)));
  return best;
}

export const highFrequencyEnergy: Detector<HighFrequencyState> = {
  name: 'highFrequency',
  description:
    'share of spectral energy above the cut-off, in standard deviations above clean images of the predicted class',
  fit(data: FitData): HighFrequencyState {
    const available = [...data.clean[0].hfShare.keys()];
    if (!available.length) throw new Error('the high-frequency sieve needs spectral shares at one cut-off at least');
    const cutoffAuroc: Record<string, number> = {};
    let best = { cutoff: available[0], auc: -1, classes: fitAt(data.clean, available[0], data.numClasses) };
    for (const cutoff of available) {
      const classes = fitAt(data.clean, cutoff, data.numClasses);
      if (!data.adversarial.length) return { cutoff, classes, cutoffAuroc };
      const auc = auroc(
        data.adversarial.map((f) => scoreAt(classes, cutoff, f)),
        data.clean.map((f) => scoreAt(classes, cutoff, f)),
      );
      cutoffAuroc[String(cutoff)] = auc;
      if (auc > best.auc) best = { cutoff, auc, classes };
    }
    return { cutoff: best.cutoff, classes: best.classes, cutoffAuroc };
  },
  score: (state, f) => scoreAt(state.classes, state.cutoff, f),
  scoreTensor(state, batch, classes) {
    const { mean, std } = stateTensors(constants, state, () => ({
      mean: tf.tensor2d(state.classes.map((c) => c.map((s) => s.mean))),
      std: tf.tensor2d(state.classes.map((c) => c.map((s) => s.std))),
    }));
    return tf.tidy(() => {
      const idx = classes;
      const z = tf.div(
        tf.sub(tf.log(tf.add(batch.hfShare(state.cutoff), 1e-9)), classRows(mean, idx)),
        classRows(std, idx),
      );
      return tf.max(z, 1) as tf.Tensor1D;
    });
  },
};

const constants = new WeakMap<HighFrequencyState, Map<string, { mean: tf.Tensor2D; std: tf.Tensor2D }>>();
