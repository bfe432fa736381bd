/**
 * The paper's claims, read against the study's figures. Each claim names the comparison that tests
 * it, gives the figures, and a verdict that follows from them by a stated rule: a difference counts
 * when its 95 % interval excludes 0 (Agresti–Caffo for two proportions, Welch's normal interval for
 * two means), so a small study says "not supported" rather than guess. Verdicts about a comparison
 * whose variants were not trained say "not measured".
 */
import { pearsonNoDc } from '../evaluation/analysis';
import type { CausesSettings, Claim, DatasetRecord, RunResult, Verdict } from './results';
import type { BudgetRow } from './robustness';

/** A 95 % interval of p₂ − p₁ (Agresti & Caffo 2000: one success and one failure added to each group). */
export function proportionDifference(k1: number, n1: number, k2: number, n2: number): [number, number, number] {
  const p1 = (k1 + 1) / (n1 + 2);
  const p2 = (k2 + 1) / (n2 + 2);
  const se = Math.sqrt((p1 * (1 - p1)) / (n1 + 2) + (p2 * (1 - p2)) / (n2 + 2));
  const d = k2 / Math.max(n2, 1) - k1 / Math.max(n1, 1);
  return [d, p2 - p1 - 1.96 * se, p2 - p1 + 1.96 * se];
}

/** Mean of b − mean of a with a 95 % Welch normal interval; null with fewer than 2 values on a side. */
export function meanDifference(a: readonly number[], b: readonly number[]): [number, number, number] | null {
  if (a.length < 2 || b.length < 2) return null;
  const stats = (v: readonly number[]) => {
    const m = v.reduce((s, x) => s + x, 0) / v.length;
    return { m, var: v.reduce((s, x) => s + (x - m) ** 2, 0) / (v.length - 1), n: v.length };
  };
  const sa = stats(a);
  const sb = stats(b);
  const se = Math.sqrt(sa.var / sa.n + sb.var / sb.n);
  const d = sb.m - sa.m;
  return [d, d - 1.96 * se, d + 1.96 * se];
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
const signed = (x: number, f: (v: number) => string) => `${x >= 0 ? '+' : '−'}${f(Math.abs(x))}`;

function pgdRow(run: RunResult, epsilon: number): BudgetRow | undefined {
  return run.attacks.find((a) => a.attack === 'pgd')?.rows.find((r) => r.epsilon === epsilon);
}

/** Mean PGD success within budget over the non-zero L∞ budgets: one vulnerability figure per model. */
export function vulnerability(run: RunResult): number {
  const rows = run.attacks.find((a) => a.attack === 'pgd')!.rows.filter((r) => r.epsilon > 0);
  return rows.reduce((s, r) => s + r.successWithinBudget, 0) / Math.max(1, rows.length);
}

/** The budget at which the baseline's PGD success is nearest 50 %: where differences can show either way. */
export function comparisonBudget(baseline: RunResult, settings: CausesSettings): number {
  const budgets = settings.linfBudgets.filter((e) => e > 0);
  return budgets.reduce((best, e) =>
    Math.abs((pgdRow(baseline, e)?.successWithinBudget ?? 1) - 0.5) <
    Math.abs((pgdRow(baseline, best)?.successWithinBudget ?? 1) - 0.5)
      ? e
      : best,
  );
}

type Outcome = 'lower' | 'higher' | 'same';
const outcome = (lo: number, hi: number): Outcome => (hi < 0 ? 'lower' : lo > 0 ? 'higher' : 'same');

/** Every (baseline, variant) pair on a data set, for the variants of one cause. */
function pairs(runs: readonly RunResult[], cause: RunResult['cause']) {
  return runs
    .filter((r) => r.cause === cause)
    .flatMap((v) => {
      const base = runs.find((r) => r.dataset === v.dataset && r.variant === 'baseline');
      return base ? [{ base, v }] : [];
    });
}

/** A variant against the baseline on PGD success at the comparison budget. */
function successComparison(base: RunResult, v: RunResult, settings: CausesSettings, epsilon?: number) {
  const e = epsilon ?? comparisonBudget(base, settings);
  const a = pgdRow(base, e)!;
  const b = pgdRow(v, e)!;
  const n1 = base.attacks[0].images;
  const n2 = v.attacks[0].images;
  const [d, lo, hi] = proportionDifference(
    Math.round(a.successWithinBudget * n1),
    n1,
    Math.round(b.successWithinBudget * n2),
    n2,
  );
  return {
    outcome: outcome(lo, hi),
    text:
      `${v.dataset}: ${v.variant} PGD success at ε ${e} ${pct(b.successWithinBudget)} (${n2} images) vs baseline ` +
      `${pct(a.successWithinBudget)} (${n1}): ${signed(d, pct)}, 95 % CI [${pct(lo)}, ${pct(hi)}]`,
  };
}

function verdictOf(outcomes: readonly Outcome[], wanted: Outcome): Verdict {
  if (outcomes.length === 0) return 'not measured';
  const good = outcomes.filter((o) => o === wanted).length;
  const bad = outcomes.filter((o) => o !== wanted && o !== 'same').length;
  if (good > 0 && bad === 0) return good === outcomes.length ? 'supported' : 'partly supported';
  if (good > 0) return 'partly supported';
  return bad > 0 ? 'contradicted' : 'not supported';
}

function linearityClaim(runs: readonly RunResult[], settings: CausesSettings): Claim {
  const found = pairs(runs, 'linearity').map(({ base, v }) => successComparison(base, v, settings));
  return {
    id: 'linearity',
    statement:
      'Model linearity causes adversarial examples: L2 normalisation (of features and/or class weights) should change it.',
    test:
      'PGD success of each L2-normalised variant against the baseline on the same data, at the budget where the ' +
      "baseline's success is nearest 50 %; supported where the normalised model is broken significantly less often.",
    verdict: verdictOf(
      found.map((f) => f.outcome),
      'lower',
    ),
    evidence: found.length ? found.map((f) => f.text) : ['no L2-normalised variant was trained'],
  };
}

function oneSumClaim(runs: readonly RunResult[], settings: CausesSettings): Claim {
  const evidence: string[] = [];
  const outcomes: Outcome[] = [];
  for (const { base, v } of pairs(runs, 'one-sum')) {
    const e = comparisonBudget(base, settings);
    const a = pgdRow(base, e)!;
    const b = pgdRow(v, e)!;
    const diff = meanDifference(a.confidences, b.confidences);
    if (!diff) {
      evidence.push(`${v.dataset}: too few successful PGD images at ε ${e} to compare confidences`);
      continue;
    }
    const [d, lo, hi] = diff;
    outcomes.push(outcome(lo, hi));
    evidence.push(
      `${v.dataset}: mean confidence of successful PGD adversarial predictions at ε ${e}: ${v.variant} ` +
        `${b.meanConfidence!.toFixed(3)} (${b.successful}) vs baseline ${a.meanConfidence!.toFixed(3)} (${a.successful}): ` +
        `${signed(d, (x) => x.toFixed(3))}, 95 % CI [${lo.toFixed(3)}, ${hi.toFixed(3)}]; clean confidence ` +
        `${v.cleanConfidence.toFixed(3)} vs ${base.cleanConfidence.toFixed(3)}`,
    );
  }
  return {
    id: 'one-sum',
    statement:
      "The softmax's one-sum constraint magnifies the confidence of adversarial predictions: a loss without it (one-vs-rest) should lower it.",
    test:
      'Mean probability the model gives its wrong prediction on successful PGD images, each loss-replaced variant ' +
      'against the softmax baseline on the same data, at the comparison budget.',
    verdict: verdictOf(outcomes, 'lower'),
    evidence: evidence.length ? evidence : ['no loss-replaced variant was trained'],
  };
}

/** Spearman's rank correlation (ties get their average rank); 0 when either side is constant. */
export function spearman(x: readonly number[], y: readonly number[]): number {
  const ranks = (v: readonly number[]) => {
    const order = v.map((value, i) => ({ value, i })).sort((a, b) => a.value - b.value);
    const r = new Array<number>(v.length);
    for (let i = 0; i < order.length;) {
      let j = i;
      while (j < order.length && order[j].value === order[i].value) j++;
      for (let k = i; k < j; k++) r[order[k].i] = (i + j - 1) / 2;
      i = j;
    }
    return r;
  };
  // Pearson's correlation of the ranks; pearsonNoDc skips its first element, so a placeholder leads.
  return pearsonNoDc([0, ...ranks(x)], [0, ...ranks(y)]);
}

function geometryClaim(runs: readonly RunResult[], datasets: readonly DatasetRecord[]): Claim {
  const evidence: string[] = [];
  const reference = datasets.filter((d) => d.geometry);
  const baseOn = (id: string) => runs.find((r) => r.dataset === id && r.variant === 'baseline');
  // Pairs of reference sets that differ in one factor: separation, or dimension.
  const geometryEffects: number[] = [];
  for (const a of reference)
    for (const b of reference) {
      if (a.id >= b.id) continue;
      const ga = a.geometry!;
      const gb = b.geometry!;
      const sameSpread = ga.spread === gb.spread && ga.classes === gb.classes;
      const factor =
        sameSpread && ga.dimension === gb.dimension && ga.separation !== gb.separation
          ? 'separation'
          : sameSpread && ga.separation === gb.separation && ga.dimension !== gb.dimension
            ? 'dimension'
            : undefined;
      const ra = baseOn(a.id);
      const rb = baseOn(b.id);
      if (!factor || !ra || !rb) continue;
      const effect = vulnerability(rb) - vulnerability(ra);
      geometryEffects.push(Math.abs(effect));
      evidence.push(
        `geometry (${factor}) ${a.id} → ${b.id}, baseline: PGD vulnerability ${pct(vulnerability(ra))} → ${pct(vulnerability(rb))} ` +
          `(${signed(effect, pct)}); separation ratio at the logits ${ra.geometry.layers[1].separationRatio.toFixed(2)} → ` +
          `${rb.geometry.layers[1].separationRatio.toFixed(2)}`,
      );
    }
  const statisticsEffects: number[] = [];
  for (const cause of ['linearity', 'one-sum'] as const)
    for (const { base, v } of pairs(runs, cause)) {
      const effect = vulnerability(v) - vulnerability(base);
      statisticsEffects.push(Math.abs(effect));
      evidence.push(
        `statistics (${cause}) ${v.dataset}: baseline → ${v.variant}: PGD vulnerability ${signed(effect, pct)}`,
      );
    }
  const withRatio = runs.filter((r) => Number.isFinite(r.geometry.layers[1].separationRatio));
  const rho = spearman(
    withRatio.map((r) => r.geometry.layers[1].separationRatio),
    withRatio.map(vulnerability),
  );
  evidence.push(
    `over all ${withRatio.length} models: Spearman correlation of the logits' separation ratio with PGD vulnerability ${rho.toFixed(2)}`,
  );
  let verdict: Verdict;
  if (geometryEffects.length === 0) verdict = 'not measured';
  else if (statisticsEffects.length === 0) verdict = 'partly supported';
  else verdict = Math.max(...geometryEffects) > Math.max(...statisticsEffects) ? 'supported' : 'not supported';
  if (verdict === 'partly supported')
    evidence.push(
      'no statistical variant (L2 normalisation, one-vs-rest) was trained: the geometry effects stand alone',
    );
  return {
    id: 'geometry',
    statement:
      'The geometry of the categories (separation, spread, dimensionality) is the more direct cause; statistical factors magnify it.',
    test:
      'PGD vulnerability (mean success within budget over the L∞ budgets) of the baseline across reference sets that ' +
      'differ in one geometric factor, against the change the statistical variants make at a fixed geometry; supported ' +
      'when the largest geometric effect exceeds the largest statistical one.',
    verdict,
    evidence,
  };
}

function densityClaim(runs: readonly RunResult[], settings: CausesSettings): Claim {
  const evidence: string[] = [];
  const name = `pgd-${settings.detectionEpsilon}`;
  const values: number[] = [];
  for (const r of runs) {
    const a = r.detection.rows.find((row) => row.attack === name)?.auroc.density;
    if (a === null || a === undefined) continue;
    values.push(a);
    evidence.push(
      `${r.dataset} × ${r.variant}: density-estimate AUROC on PGD ε ${settings.detectionEpsilon} ${a.toFixed(3)}`,
    );
  }
  const strong = values.filter((v) => v >= 0.9).length;
  const weak = values.filter((v) => v < 0.7).length;
  let verdict: Verdict =
    values.length === 0
      ? 'not measured'
      : strong === values.length
        ? 'supported'
        : weak === values.length
          ? 'not supported'
          : 'partly supported';
  const pnn = runs.filter((r) => r.rejection);
  for (const r of pnn) {
    const rej = r.rejection!;
    const rows = rej.rows.map(
      (row) => `${row.attack} ${pct(row.rejected)} (AUROC ${row.auroc === null ? '–' : row.auroc.toFixed(3)})`,
    );
    evidence.push(
      `${r.dataset} × ${r.variant}: p(none) ≥ 0.5 on ${pct(rej.cleanRejected)} of ${rej.cleanImages} clean test images; on successful adversarial images: ${rows.join(', ')}`,
    );
  }
  if (pnn.length === 0)
    evidence.push('no MLP-PNN variant was trained: its "none of the classes" density is not measured');
  else {
    // The PNN half: rejecting most adversarial images as none, at a clean price below a tenth.
    const rejects = pnn.every(
      (r) => r.rejection!.cleanRejected < 0.1 && r.rejection!.rows.every((row) => row.rejected >= 0.5),
    );
    const never = pnn.every((r) => r.rejection!.rows.every((row) => row.rejected <= r.rejection!.cleanRejected + 0.05));
    const pnnVerdict: Verdict = rejects ? 'supported' : never ? 'not supported' : 'partly supported';
    evidence.push(`MLP-PNN alone: ${pnnVerdict}; density estimation alone: ${verdict}`);
    if (pnnVerdict !== verdict) verdict = 'partly supported';
  }
  return {
    id: 'density',
    statement: 'MLP-PNN and density estimation can reject adversarial inputs as "none of the classes".',
    test:
      "AUROC of advsieve's density detector (kernel density of the last hidden layer under the predicted class) " +
      'separating successful PGD images from clean ones, per model: supported when ≥ 0.9 on every model, not supported when < 0.7 on every one; ' +
      "and MLP-PNN's p(none) ≥ 0.5 on successful adversarial images: supported when it rejects at least half of every attack's at a clean rejection rate under 10 %, " +
      'not supported when it rejects them no more often than clean images (+5 points); the claim is supported when both halves are.',
    verdict,
    evidence,
  };
}

function adversarialTrainingClaim(runs: readonly RunResult[], settings: CausesSettings): Claim {
  const found = pairs(runs, 'adversarial-training').map(({ base, v }) =>
    successComparison(base, v, settings, settings.detectionEpsilon),
  );
  return {
    id: 'adversarial-training',
    statement:
      "(Not the paper's: the model that resists.) Adversarial training lowers attack success at its training budget.",
    test: `PGD success at ε ${settings.detectionEpsilon} of the adversarially trained variant against the baseline on the same data.`,
    verdict: verdictOf(
      found.map((f) => f.outcome),
      'lower',
    ),
    evidence: found.length ? found.map((f) => f.text) : ['no adversarially trained variant was trained'],
  };
}

export function judgeClaims(
  runs: readonly RunResult[],
  datasets: readonly DatasetRecord[],
  settings: CausesSettings,
): Claim[] {
  return [
    linearityClaim(runs, settings),
    oneSumClaim(runs, settings),
    geometryClaim(runs, datasets),
    densityClaim(runs, settings),
    adversarialTrainingClaim(runs, settings),
  ];
}
