/**
 * One verdict for an image screened in several views (src/images/decode.ts's ImageView): it is
 * adversarial when any view is, and what is reported — prediction, detection, defense — is the
 * most suspicious view's, the one with the highest combined score (all views are read against the
 * same thresholds, so that view is flagged whenever any is). The API and the CLI share this rule.
 */
import type { Prediction, ScreenOutcome } from './screener';

export interface ViewSummary {
  readonly name: string;
  readonly adversarial: boolean;
  readonly score: number;
  readonly prediction: Prediction;
}

export interface ViewsVerdict<T extends { name: string; outcome: ScreenOutcome }> {
  /** The reported view. */
  readonly chosen: T;
  readonly views: ViewSummary[];
  /** The chosen view's name when the image is flagged; null otherwise. */
  readonly flaggedView: string | null;
}

export function mostSuspiciousView<T extends { name: string; outcome: ScreenOutcome }>(
  screened: readonly T[],
): ViewsVerdict<T> {
  if (!screened.length) throw new Error('no view to screen');
  let chosen = screened[0];
  for (const v of screened) if (v.outcome.detection.score > chosen.outcome.detection.score) chosen = v;
  return {
    chosen,
    views: screened.map((v) => ({
      name: v.name,
      adversarial: v.outcome.detection.adversarial,
      score: v.outcome.detection.score,
      prediction: v.outcome.prediction,
    })),
    flaggedView: chosen.outcome.detection.adversarial ? chosen.name : null,
  };
}
