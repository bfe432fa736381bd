/**
 * One evaluation from parts run apart: `evaluate --offset` splits a draw across processes (an
 * end-to-end attack of 1 000 images is an hour on one core), and this pools their reports into the
 * report the whole draw would have had. Counts add up exactly (success, misclassified, evaded of the
 * eligible images); AUROC, TPR and ROC are read again on the pooled scores (scores.json: positives
 * of every part against the clean images of every part); means over images (norms, defenses,
 * research claims, loss per step) are weighted by the images each part averaged. The clean
 * false-positive section is the same in every part (measured on the whole pool): it is kept once.
 *
 * Parts must be of one model, calibration, seed and attack list, on disjoint offsets of one draw;
 * anything else is refused rather than averaged. Parts written before evaluate kept its per-image
 * scores and counts still merge: their counts are read back from the rates (a rate times the
 * images it is of is a whole number), and the AUROC and TPR at 5 %, which need the scores, are n/a.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { AttackRow, DefenseRow, EvaluationArtifacts, EvaluationResult, EvaluationScores } from './evaluate';
import { detectorRows, rocCurves } from './evaluate';
import type { ReportContext } from './report';

/** A part as read from its directory: evaluation.json (result, goals, context) and scores.json. */
export interface EvaluationPart {
  readonly dir: string;
  readonly result: EvaluationResult;
  readonly context: ReportContext;
  /** Absent in reports written before evaluate kept them. */
  readonly scores?: EvaluationScores;
}

export class MergeError extends Error {}

export function readPart(dir: string): EvaluationPart {
  const file = path.join(dir, 'evaluation.json');
  if (!fs.existsSync(file)) throw new MergeError(`${file} is missing: not an evaluation report`);
  // evaluation.json is the result with the goals checked on it and the context beside it.
  const { context, ...result } = JSON.parse(fs.readFileSync(file, 'utf8'));
  delete result.goals;
  const scores = path.join(dir, 'scores.json');
  return {
    dir,
    result: withCounts(dir, result as EvaluationResult),
    context: context as ReportContext,
    ...(fs.existsSync(scores) ? { scores: JSON.parse(fs.readFileSync(scores, 'utf8')) as EvaluationScores } : {}),
  };
}

/**
 * A result whose rows carry their image counts: as written, or read back from the rates of a report
 * written before they were (an untargeted row's eligible images are the ones classified right).
 */
export function withCounts(dir: string, result: EvaluationResult): EvaluationResult {
  return {
    ...result,
    attacks: result.attacks.map((a) => {
      if (typeof a.eligible === 'number') return a;
      if (a.targetClass !== null && a.targetClass !== undefined)
        throw new MergeError(
          `${dir}: ${a.name}: a row towards one class written without its image counts; run it again`,
        );
      const eligible = Math.round(result.cleanAccuracy * result.images);
      return {
        ...a,
        eligible,
        misclassified: Math.round(a.misclassificationRate * eligible),
        evaded: Math.round(a.evasionRate * eligible),
      };
    }),
  };
}

/** A part's offset in the draw: recorded since parts were; older reports say it in their command. */
function offsetOf(part: EvaluationPart): number {
  if (typeof part.context.offset === 'number') return part.context.offset;
  const m = /--offset[ =](\d+)/.exec(part.context.command);
  return m ? Number(m[1]) : 0;
}

function same<T>(parts: readonly EvaluationPart[], what: string, get: (p: EvaluationPart) => T): T {
  const first = JSON.stringify(get(parts[0]));
  const other = parts.find((p) => JSON.stringify(get(p)) !== first);
  if (other)
    throw new MergeError(
      `${other.dir}: its ${what} differs from ${parts[0].dir}'s; only parts of one evaluation merge`,
    );
  return get(parts[0]);
}

/** Σ w·x / Σ w over the parts (0 when no weight). */
function weighted(values: readonly number[], weights: readonly number[]): number {
  let sum = 0;
  let total = 0;
  values.forEach((v, k) => {
    if (weights[k] > 0 && Number.isFinite(v)) {
      sum += v * weights[k];
      total += weights[k];
    }
  });
  return total > 0 ? sum / total : weights.some((w) => w > 0) ? NaN : 0;
}

function mergeDefenses(rows: readonly (readonly DefenseRow[])[], images: readonly number[]): DefenseRow[] {
  return rows[0].map((d) => ({
    name: d.name,
    accuracy: weighted(
      rows.map((r) => r.find((x) => x.name === d.name)!.accuracy),
      images,
    ),
    cleanAccuracy: weighted(
      rows.map((r) => r.find((x) => x.name === d.name)!.cleanAccuracy),
      images,
    ),
  }));
}

function mergeRow(
  name: string,
  parts: readonly EvaluationPart[],
  clean: readonly number[][] | undefined,
  names: readonly string[],
  thresholds: Record<string, number | undefined>,
): { row: AttackRow; positives: number[][]; loss?: { sum: number[]; images: number[] } } {
  const rows = parts.map((p) => p.result.attacks.find((a) => a.name === name)!);
  const first = rows[0];
  const eligible = rows.reduce((n, r) => n + r.eligible, 0);
  const misclassified = rows.reduce((n, r) => n + r.misclassified, 0);
  const evaded = rows.reduce((n, r) => n + r.evaded, 0);
  const successful = rows.reduce((n, r) => n + r.successful, 0);
  const base = Math.max(eligible, 1);
  const weights = rows.map((r) => r.misclassified);
  const pooled = clean !== undefined;
  parts.forEach((p, k) => {
    const n = p.scores?.rows[name]?.positives.length ?? 0;
    if (pooled && n !== rows[k].misclassified)
      throw new MergeError(`${p.dir}: ${name}: ${n} positive scores for ${rows[k].misclassified} misclassified images`);
  });
  const positives = parts.flatMap((p) => p.scores?.rows[name]?.positives ?? []);
  const detectors = pooled
    ? detectorRows(names, positives, clean, thresholds)
    : // Without the scores: the share flagged at the deployed threshold adds up; the rest is n/a.
      first.detectors.map((d, k) => ({
        name: d.name,
        auroc: NaN,
        tprAtFpr5: NaN,
        tprAtCalibratedThreshold: weighted(
          rows.map((r) => r.detectors[k].tprAtCalibratedThreshold),
          weights,
        ),
      }));
  // The loss per step, as sums over images: the parts' sums add up, and a merge of merges still can.
  const curves = parts.map((p) => p.scores?.rows[name]?.loss).filter((c) => c !== undefined);
  const steps = Math.max(0, ...curves.map((c) => c.sum.length));
  const loss = curves.length
    ? {
        sum: Array.from({ length: steps }, (_, k) => curves.reduce((a, c) => a + (c.sum[k] ?? 0), 0)),
        images: Array.from({ length: steps }, (_, k) => curves.reduce((a, c) => a + (c.images[k] ?? 0), 0)),
      }
    : undefined;
  const spectrumWeights = rows.map((r) => r.spectrum.images);
  // Means over a row's misclassified images (norms, claims), over its spectra's images.
  const mean = (get: (r: AttackRow) => number) => weighted(rows.map(get), weights);
  const spectrumMean = (get: (r: AttackRow) => number) => weighted(rows.map(get), spectrumWeights);
  const row: AttackRow = {
    ...first,
    successRate: (first.adaptive ? evaded : successful) / base,
    misclassificationRate: misclassified / base,
    evasionRate: evaded / base,
    successful,
    eligible,
    misclassified,
    evaded,
    meanLinf: mean((r) => r.meanLinf),
    meanL2: mean((r) => r.meanL2),
    detectors,
    defenses: mergeDefenses(
      rows.map((r) => r.defenses),
      parts.map((p) => p.result.images),
    ),
    spectrum: {
      targetCorrelation: spectrumMean((r) => r.spectrum.targetCorrelation),
      otherCorrelation: spectrumMean((r) => r.spectrum.otherCorrelation),
      targetIsBest: spectrumMean((r) => r.spectrum.targetIsBest),
      images: spectrumWeights.reduce((a, b) => a + b, 0),
    },
    trajectory: first.trajectory.map((layer, j) => {
      const of = (key: Exclude<keyof typeof layer, 'layer'>) => mean((r) => r.trajectory[j][key]);
      return {
        layer: layer.layer,
        cleanToOrigin: of('cleanToOrigin'),
        cleanToTarget: of('cleanToTarget'),
        adversarialToOrigin: of('adversarialToOrigin'),
        adversarialToTarget: of('adversarialToTarget'),
        nearestIsTarget: of('nearestIsTarget'),
      };
    }),
    promotionSuppression: {
      suppression: mean((r) => r.promotionSuppression.suppression),
      promotion: mean((r) => r.promotionSuppression.promotion),
      balanced: mean((r) => r.promotionSuppression.balanced),
      meanDrop: mean((r) => r.promotionSuppression.meanDrop),
      meanRise: mean((r) => r.promotionSuppression.meanRise),
    },
    // Processor time of the row over all parts (they ran side by side: not the wall time).
    seconds: rows.reduce((a, r) => a + r.seconds, 0),
  };
  return { row, positives, loss };
}

/**
 * Pools parts of one evaluation. `thresholds` are the deployed thresholds of the calibration the
 * parts were run with (tprAtCalibratedThreshold is read again on the pooled positives).
 */
export function mergeEvaluations(
  parts: readonly EvaluationPart[],
  thresholds: Record<string, number | undefined>,
): { result: EvaluationResult; artifacts: EvaluationArtifacts; context: ReportContext } {
  if (parts.length < 2) throw new MergeError('merging needs at least two parts');
  same(parts, 'model', (p) => p.context.model);
  same(parts, 'calibration', (p) => p.context.calibration.createdAt);
  same(parts, 'image pool', (p) => p.context.images ?? null);
  same(parts, 'seed', (p) => p.result.seed);
  const attackNames = same(parts, 'attack list', (p) => p.result.attacks.map((a) => a.name));
  const names = same(parts, 'detector list', (p) => p.result.attacks[0]?.detectors.map((d) => d.name) ?? []);
  // AUROC and ROC are read on the pooled scores: only when every part has them.
  const pooled = parts.every((p) => p.scores);
  // Disjoint offsets of one draw: each part's images are [offset, offset + images).
  const spans = parts.map((p) => ({ dir: p.dir, from: offsetOf(p), to: offsetOf(p) + p.result.images }));
  const sorted = [...spans].sort((a, b) => a.from - b.from);
  sorted.slice(1).forEach((s, k) => {
    if (s.from < sorted[k].to)
      throw new MergeError(
        `${s.dir} (images ${s.from}–${s.to - 1} of the draw) overlaps ${sorted[k].dir} (${sorted[k].from}–${sorted[k].to - 1})`,
      );
  });
  for (const p of parts) {
    if (p.scores && JSON.stringify(p.scores.names) !== JSON.stringify(names))
      throw new MergeError(`${p.dir}: scores.json's detectors differ from its report's`);
    if (p.scores && p.scores.clean.length !== p.result.images)
      throw new MergeError(
        `${p.dir}: scores.json has ${p.scores.clean.length} clean rows for ${p.result.images} images`,
      );
  }
  const images = parts.map((p) => p.result.images);
  const clean = pooled ? parts.flatMap((p) => p.scores!.clean) : undefined;
  const merged = attackNames.map((name) => mergeRow(name, parts, clean, names, thresholds));
  const artifacts: EvaluationArtifacts = {
    roc: clean
      ? Object.fromEntries(merged.map(({ row, positives }) => [row.name, rocCurves(names, positives, clean)]))
      : {},
    cleanSpectra: [],
    adversarialSpectra: {},
    perturbationSpectra: {},
    lossCurves: Object.fromEntries(
      merged.flatMap(({ row, loss }) => (loss ? [[row.name, loss.sum.map((v, k) => v / loss.images[k])]] : [])),
    ),
    ...(clean
      ? {
          scores: {
            names,
            clean,
            rows: Object.fromEntries(
              merged.map(({ row, positives, loss }) => [row.name, { positives, ...(loss ? { loss } : {}) }]),
            ),
          },
        }
      : {}),
  };
  const first = parts[0].result;
  const result: EvaluationResult = {
    images: images.reduce((a, b) => a + b, 0),
    seed: first.seed,
    cleanAccuracy: weighted(
      parts.map((p) => p.result.cleanAccuracy),
      images,
    ),
    cleanFalsePositiveRate: Object.fromEntries(
      Object.keys(first.cleanFalsePositiveRate).map((k) => [
        k,
        weighted(
          parts.map((p) => p.result.cleanFalsePositiveRate[k]),
          images,
        ),
      ]),
    ),
    ...(first.falsePositives ? { falsePositives: first.falsePositives } : {}),
    defensesClean: mergeDefenses(
      parts.map((p) => p.result.defensesClean),
      images,
    ),
    attacks: merged.map((m) => m.row),
    seconds: parts.reduce((a, p) => a + p.result.seconds, 0),
  };
  const context: ReportContext = {
    ...parts[0].context,
    offset: sorted[0].from,
    parts: sorted.map((s) => {
      const part = parts.find((p) => p.dir === s.dir)!;
      return {
        dir: s.dir,
        offset: s.from,
        images: s.to - s.from,
        command: part.context.command,
        seconds: part.result.seconds,
        scores: part.scores !== undefined,
      };
    }),
  };
  return { result, artifacts, context };
}
