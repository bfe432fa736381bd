/**
 * Adaptive attack targets: the defense and the detectors as the attacker sees them when it knows
 * them (Carlini & Wagner 2017; Athalye et al. 2018, "Obfuscated gradients give a false sense of
 * security"). A detector that only stops attackers who ignore it is not a detector.
 *  - through the low-pass defense: the filter is linear, so the attack differentiates the
 *    classifier composed with it exactly (no BPDA approximation needed);
 *  - against the detectors: the loss also pushes every detector's score, and the combined score,
 *    under its threshold — each excess measured in units of that score's clean spread;
 *  - against the verdict alone: only the combined score's excess. The verdict is what flags an
 *    image, so an attacker need not quiet each detector: this aim spends the whole budget on the
 *    one constraint that matters, where 'every' also pays for detectors the verdict outweighs.
 */
import * as tf from '@tensorflow/tfjs';
import type { Calibration } from '../calibration/calibrationFile';
import { combinedScoreTensor, interquartileRange } from '../detectors/combined';
import type { InferenceModel } from '../engine/model';
import { lowPassImages, LowPassKind } from '../engine/spectra';
import type { Screener } from '../screening/screener';
import { tensorFeatures } from '../screening/tensorFeatures';
import type { AttackTarget } from './attack';

export function lowPassTarget(model: InferenceModel, lowPass: { radius: number; kind: LowPassKind }): AttackTarget {
  return { logits: (x) => model.logits(lowPassImages(x, lowPass.radius, lowPass.kind)) };
}

/** What the detector-aware penalty pushes under its threshold: every score and the verdict, or the verdict only. */
export type DetectorAim = 'every' | 'verdict';

export function detectorAwareTarget(
  model: InferenceModel,
  screener: Screener,
  targetFpr?: number,
  aim: DetectorAim = 'every',
): AttackTarget {
  const calibration: Calibration = screener.calibration;
  const thresholds = screener.thresholds(targetFpr);
  const spread = screener.detectors.map((d) => scoreSpread(calibration, d.name));
  return {
    logits: (x) => model.logits(x),
    penalty: (x) =>
      tf.tidy(() => {
        const f = tensorFeatures(model, x, calibration);
        const classes = tf.argMax(f.logits, 1) as tf.Tensor1D;
        const scores = screener.detectors.map((d) => d.scoreTensor(calibration.detectors[d.name], f, classes));
        const combined = combinedScoreTensor(
          calibration.combined,
          screener.combinedInputs.map((k) => scores[k]),
        );
        const verdictExcess = tf.relu(tf.sub(combined, thresholds.combined)) as tf.Tensor1D;
        if (aim === 'verdict') return verdictExcess;
        const excess = scores.map((s, k) =>
          tf.div(tf.relu(tf.sub(s, thresholds[screener.detectors[k].name])), spread[k]),
        );
        excess.push(verdictExcess);
        return tf.addN(excess) as tf.Tensor1D;
      }),
  };
}

/**
 * A detector's clean spread, the unit of its excess: the combined verdict's (the interquartile range
 * it standardised the score by), or for a detector the verdict leaves out the same range of its clean
 * threshold scores.
 */
function scoreSpread(calibration: Calibration, name: string): number {
  const k = calibration.combined.detectors.indexOf(name);
  if (k >= 0) return calibration.combined.spread[k];
  return interquartileRange(calibration.holdoutScores[name] ?? []);
}
