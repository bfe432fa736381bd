/**
 * "None of the classes": a model with a density head (MLP-PNN) gives every image a probability that
 * it belongs to no class at all. The paper's claim is that such a model rejects adversarial inputs
 * as "none". Measured here: the share of clean test images and of each attack's successful
 * adversarial images with p(none) ≥ 0.5 (the head's own threshold, set at training on the training
 * images), and the AUROC of p(none) separating the adversarial images from the clean ones.
 */
import { auroc } from '../evaluation/metrics';
import type { InferenceModel } from '../engine/model';
import { runInBatches } from '../screening/inProcess';
import { MIN_POSITIVES } from './detection';
import type { LabelledPixels, Successful } from './robustness';

export interface RejectionRow {
  readonly attack: string;
  readonly images: number;
  /** Share with p(none) ≥ 0.5. */
  readonly rejected: number;
  /** p(none) of these against the clean images' (null: fewer than MIN_POSITIVES images). */
  readonly auroc: number | null;
}

export interface Rejection {
  readonly cleanImages: number;
  /** Share of clean test images rejected as none (the price in false rejections). */
  readonly cleanRejected: number;
  readonly rows: RejectionRow[];
}

const share = (values: readonly number[]) => values.filter((p) => p >= 0.5).length / Math.max(1, values.length);

export async function rejection(
  model: InferenceModel,
  noneProbability: (logits: Float32Array) => number,
  clean: LabelledPixels,
  successful: readonly Successful[],
): Promise<Rejection> {
  const none = async (pixels: Float32Array, count: number) =>
    (await runInBatches(model, pixels, count)).map((o) => noneProbability(o.logits));
  const cleanNone = await none(clean.pixels, clean.count);
  const rows: RejectionRow[] = [];
  for (const s of successful) {
    const adv = await none(s.pixels, s.count);
    rows.push({
      attack: s.name,
      images: s.count,
      rejected: share(adv),
      auroc: s.count >= MIN_POSITIVES ? auroc(adv, cleanNone) : null,
    });
  }
  return { cleanImages: clean.count, cleanRejected: share(cleanNone), rows };
}
