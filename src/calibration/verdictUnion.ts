/**
 * Choosing the combined verdict's "either one" terms (UnionTerm in src/detectors/combined.ts): for
 * each detector the regression reads and each share of the target rate, the term that maps the
 * detector's clean quantile at that share onto the regression's at the rest; kept is the one that
 * flags the most calibration attacks at the target rate, and only if it flags at least
 * UNION_MIN_GAIN more of them than the verdict without it; then a second the same way (two
 * detectors may each see an attack the other misses: boundary margin and low-pass disagreement on
 * minimal-confidence CW). Without a gain the verdict stays the regression.
 *
 * Both sides are calibration data: the clean rows are the hold-out half the regression was not
 * fitted on, the attacks are those the regression was fitted on, which favours the regression
 * alone — a term is kept only against that bias. The rate on new clean images does not depend on
 * this choice: the thresholds are read afterwards on the combined score itself (./thresholds.ts).
 */
import { CombinedState, combinedScore, interquartileRange, UnionTerm } from '../detectors/combined';
import { conformalThreshold } from './conformal';

/** The shares of the target rate a detector's own term may take. */
export const UNION_SHARES = [0.2, 0.35, 0.5] as const;
/** The fewest extra attacks (a fraction of them) a term must flag at the target rate to be kept. */
export const UNION_MIN_GAIN = 0.01;
/** At most this many terms, chosen one at a time; the regression keeps at least 1 − Σ shares of the rate. */
export const UNION_MAX_TERMS = 2;

export interface UnionCandidate {
  /** The terms chosen before this one (detector names), then this one's. */
  readonly after: readonly string[];
  readonly detector: string;
  readonly share: number;
  /**
   * The share of calibration attacks flagged at the target rate with this term (and those before
   * it); with fitUnion's `attackOfRow`, the lowest share among the attacks.
   */
  readonly tpr: number;
}

export interface UnionChoice {
  /** The regression with the chosen terms, or without any. */
  readonly state: CombinedState;
  /** The chosen terms, in the order they were chosen. */
  readonly terms: readonly { readonly detector: string; readonly share: number }[];
  /** Flagged attacks at the target rate (as UnionCandidate.tpr): the regression alone, and with the chosen terms. */
  readonly regressionTpr: number;
  readonly tpr: number;
  readonly candidates: readonly UnionCandidate[];
  /** What the shares are of: all calibration attacks pooled, or the attack flagged least (fitUnion's `attackOfRow`). */
  readonly criterion: 'pooled' | 'worstAttack';
}

/** The clean spread of a column of scores (combined.ts's unit). */
const spreadOf = (values: readonly number[]) => interquartileRange(Float64Array.from(values).sort());

/** Whether each `adversarial` row's combined score is over the threshold read on `clean` at `targetFpr`. */
function flaggedRows(
  state: CombinedState,
  clean: readonly number[][],
  adversarial: readonly number[][],
  targetFpr: number,
): boolean[] {
  const threshold = conformalThreshold(
    clean.map((r) => combinedScore(state, r)),
    targetFpr,
  );
  return adversarial.map((r) => combinedScore(state, r) > threshold);
}

/**
 * The share of `adversarial` rows whose combined score is over the threshold read on `clean` at
 * `targetFpr`; with `weights`, the weighted share.
 */
export function flaggedAt(
  state: CombinedState,
  clean: readonly number[][],
  adversarial: readonly number[][],
  targetFpr: number,
  weights?: readonly number[],
): number {
  let flagged = 0;
  let total = 0;
  flaggedRows(state, clean, adversarial, targetFpr).forEach((isFlagged, n) => {
    const w = weights ? weights[n] : 1;
    total += w;
    if (isFlagged) flagged += w;
  });
  return flagged / total;
}

/**
 * The lowest, over the attacks, of the share of an attack's rows flagged at `targetFpr`
 * (`attackOfRow[n]`: row n's attack): how a verdict fares against an attacker who picks the attack.
 */
export function worstAttackFlaggedAt(
  state: CombinedState,
  clean: readonly number[][],
  adversarial: readonly number[][],
  targetFpr: number,
  attackOfRow: ArrayLike<number>,
): number {
  const counts = new Map<number, { flagged: number; total: number }>();
  flaggedRows(state, clean, adversarial, targetFpr).forEach((isFlagged, n) => {
    const c = counts.get(attackOfRow[n]) ?? { flagged: 0, total: 0 };
    c.total++;
    if (isFlagged) c.flagged++;
    counts.set(attackOfRow[n], c);
  });
  return Math.min(...[...counts.values()].map((c) => c.flagged / c.total));
}

/**
 * The union terms for `state` (its own terms, if any, are dropped first), one at a time while each
 * gains UNION_MIN_GAIN. Rows hold the scores in `state.detectors` order; `adversarialWeights`
 * weigh the attacks as fitCombined's option of that name. With `attackOfRow` (each row's attack),
 * what a term must gain is the worst attack's flagged share instead of the pooled one: with the
 * attacks weighed alike, one that only a single detector sees (minimal-confidence CW) is a sixth of
 * the pooled share, and a term that lifts it from 0.74 to 0.94 moved the pool by less than the
 * minimum gain while that attack was the one an attacker would pick (stop 32).
 */
export function fitUnion(
  state: CombinedState,
  clean: readonly number[][],
  adversarial: readonly number[][],
  targetFpr: number,
  adversarialWeights?: readonly number[],
  attackOfRow?: ArrayLike<number>,
): UnionChoice {
  if (!clean.length || !adversarial.length) throw new Error('the union term needs clean and adversarial scores');
  const regression: CombinedState = { ...state, union: undefined };
  const regressionClean = clean.map((r) => combinedScore(regression, r));
  const regressionSpread = spreadOf(regressionClean);
  const criterion = (candidate: CombinedState) =>
    attackOfRow
      ? worstAttackFlaggedAt(candidate, clean, adversarial, targetFpr, attackOfRow)
      : flaggedAt(candidate, clean, adversarial, targetFpr, adversarialWeights);
  const regressionTpr = criterion(regression);
  const candidates: UnionCandidate[] = [];
  let chosen: { state: CombinedState; terms: UnionTerm[]; tpr: number } = {
    state: regression,
    terms: [],
    tpr: regressionTpr,
  };
  while (chosen.terms.length < UNION_MAX_TERMS) {
    const taken = chosen.terms.reduce((sum, t) => sum + t.share, 0);
    let best: typeof chosen | null = null;
    for (const [input, detector] of state.detectors.entries()) {
      if (chosen.terms.some((t) => t.input === input)) continue;
      const column = clean.map((r) => r[input]);
      const scale = spreadOf(column) / regressionSpread;
      for (const share of UNION_SHARES) {
        if (taken + share >= 1) continue;
        const level = conformalThreshold(regressionClean, (1 - taken - share) * targetFpr);
        const at = conformalThreshold(column, share * targetFpr);
        // Too few clean rows to tell the rate apart: no term at this share.
        if (!Number.isFinite(level) || !Number.isFinite(at)) continue;
        const terms = [...chosen.terms, { input, at, scale, share }];
        const candidate: CombinedState = { ...regression, union: { level, terms } };
        const tpr = criterion(candidate);
        candidates.push({ after: chosen.terms.map((t) => state.detectors[t.input]), detector, share, tpr });
        if (!best || tpr > best.tpr) best = { state: candidate, terms, tpr };
      }
    }
    if (!best || best.tpr < chosen.tpr + UNION_MIN_GAIN) break;
    chosen = best;
  }
  return {
    state: chosen.state,
    terms: chosen.terms.map((t) => ({ detector: state.detectors[t.input], share: t.share })),
    regressionTpr,
    tpr: chosen.tpr,
    candidates,
    criterion: attackOfRow ? 'worstAttack' : 'pooled',
  };
}
