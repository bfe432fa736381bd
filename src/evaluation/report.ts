/**
 * The evaluation report: reports/evaluation.json (the result object), reports/evaluation.md (tables,
 * the goals with the margin by which each is met or missed, the research claims) and PNG plots.
 */
import * as fs from 'fs';
import * as path from 'path';
import { COMBINED } from '../detectors/registry';
import { heatmapGrid, linePlot, rocPlot } from '../report/plots';
import type { AttackRow, EvaluationArtifacts, EvaluationResult } from './evaluate';
import { FEATURE_SQUEEZING } from './evaluate';

export interface GoalCheck {
  readonly goal: string;
  readonly measured: string;
  readonly met: boolean;
  /** How far from the goal, when missed. */
  readonly shortfall?: string;
}

export interface ReportContext {
  readonly command: string;
  readonly date: string;
  readonly model: { id: string; sha256: string };
  readonly backend: string;
  readonly calibration: {
    createdAt: string;
    defaultTargetFpr: number;
    lowPass: { radius: number; kind: string; filteredAccuracy: number; cleanAccuracy: number };
    data?: { thresholds?: { source: string; readAt: string } };
  };
  readonly labels: readonly string[];
  readonly imageShape: readonly number[];
  /** Where the images came from, in words; undefined: Fashion-MNIST's test split. */
  readonly images?: string;
  /** Images of the seeded draw skipped before these (`evaluate --offset`). */
  readonly offset?: number;
  /** A merged report (./merge.ts): the parts it pools, in draw order. */
  readonly parts?: readonly {
    dir: string;
    offset: number;
    images: number;
    command: string;
    seconds: number;
    /** Whether the part had its per-image scores (scores.json). */
    scores: boolean;
  }[];
}

/**
 * What a report records of its calibration: the declared fields only. Callers pass the whole
 * calibration (it is one), and JSON.stringify would write its fitted states too: 3.8 MB for
 * fashion-cnn's, 50 MB for MobileNetV2's, in every evaluation.json.
 */
export function calibrationRecord(c: ReportContext['calibration']): ReportContext['calibration'] {
  return {
    createdAt: c.createdAt,
    defaultTargetFpr: c.defaultTargetFpr,
    lowPass: c.lowPass,
    ...(c.data ? { data: c.data } : {}),
  };
}

/** The suite's plain PGD row (untargeted, not adaptive): `pgd-0.1`, `pgd-8/255`. */
const plainPgd = (result: EvaluationResult) =>
  result.attacks.find((a) => a.method === 'pgd' && !a.adaptive && !a.targeted);

const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)} %` : 'n/a');
const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
const detector = (row: AttackRow, name: string) => row.detectors.find((d) => d.name === name)!;
const defense = (row: AttackRow, name: string) => row.defenses.find((d) => d.name === name)!;

/**
 * A spectrum (h × w, zero frequency at [0, 0]) as a heatmap tile of at most 56 × 56 cells: block
 * means beyond that (a 224 × 224 tile would be 50 176 marks for the plot to lay out, and a page
 * shows no more detail).
 */
function shrunk(
  values: Float32Array,
  shape: readonly number[],
): { values: Float32Array; width: number; height: number } {
  const [h, w] = shape;
  const f = Math.ceil(Math.max(h, w) / 56);
  if (f <= 1) return { values, width: w, height: h };
  const [sh, sw] = [Math.floor(h / f), Math.floor(w / f)];
  const out = new Float32Array(sh * sw);
  for (let y = 0; y < sh * f; y++)
    for (let x = 0; x < sw * f; x++) out[Math.floor(y / f) * sw + Math.floor(x / f)] += values[y * w + x] / (f * f);
  return { values: out, width: sw, height: sh };
}

export function checkGoals(result: EvaluationResult): GoalCheck[] {
  const checks: GoalCheck[] = [];
  const plain = result.attacks.filter((a) => !a.adaptive);
  const atLeast = (goal: string, value: number, min: number, show: (x: number) => string, interval?: number[]) =>
    checks.push({
      goal,
      measured: interval ? `${show(value)} (95 % ${show(interval[0])}–${show(interval[1])})` : show(value),
      met: value >= min,
      shortfall: value >= min ? undefined : `${show(min - value)} short`,
    });
  for (const a of plain.filter((r) => ['fgsm', 'pgd', 'cw'].includes(r.method))) {
    const c = detector(a, COMBINED);
    const min = a.method === 'cw' ? 0.95 : 0.99;
    atLeast(`${a.name}: combined AUROC ≥ ${min}`, c.auroc, min, f3, c.aurocInterval);
    atLeast(`${a.name}: combined TPR at 5 % FPR ≥ 0.95`, c.tprAtFpr5, 0.95, f3);
  }
  for (const a of plain) {
    const fsAuc = detector(a, FEATURE_SQUEEZING).auroc;
    const ours = a.detectors.filter((d) => d.name !== FEATURE_SQUEEZING);
    const losers = ours.filter((d) => !(d.auroc > fsAuc));
    checks.push({
      goal: `${a.name}: each of our detectors beats Feature Squeezing (AUROC ${f3(fsAuc)})`,
      measured: ours.map((d) => `${d.name} ${f3(d.auroc)}`).join(', '),
      met: losers.length === 0,
      shortfall: losers.length
        ? `not beaten by ${losers.map((d) => `${d.name} (${f3(fsAuc - d.auroc)} below)`).join(', ')}`
        : undefined,
    });
  }
  // The operator's budget of false alarms, on images no threshold was read on: the measured rate
  // within ±20 % of the target (5 ± 1 %, 1 ± 0.2 %... the issue's 0.5–1.5 % at 1 % is wider; this is stricter).
  for (const row of result.falsePositives?.rows.filter((r) => r.detector === COMBINED) ?? []) {
    const [low, high] = row.target === 0.01 ? [0.005, 0.015] : [row.target - 0.01, row.target + 0.01];
    const rate = row.measured.rate;
    const met = rate >= low && rate <= high;
    checks.push({
      goal: `clean FPR of the combined verdict at target ${pct(row.target)} within ${pct(low)}–${pct(high)} on ${row.images} unseen images`,
      measured: `${pct(rate)} (95 % CI ${pct(row.measured.low)}–${pct(row.measured.high)})`,
      met,
      shortfall: met ? undefined : `${pct(rate < low ? low - rate : rate - high)} ${rate < low ? 'under' : 'over'}`,
    });
  }
  const pgd = plainPgd(result);
  if (pgd) {
    const lp = defense(pgd, 'lowpass');
    const cost = result.cleanAccuracy - lp.cleanAccuracy;
    atLeast(`low-pass accuracy under ${pgd.name} ≥ 50 %`, lp.accuracy, 0.5, pct);
    checks.push({
      goal: 'low-pass clean-accuracy cost ≤ 1 point',
      measured: `${(cost * 100).toFixed(2)} points`,
      met: cost <= 0.01 + 1e-9,
      shortfall: cost <= 0.01 + 1e-9 ? undefined : `${((cost - 0.01) * 100).toFixed(2)} points over`,
    });
  }
  return checks;
}

/** The clean false-positive rate on unseen images, with intervals (src/evaluation/falsePositives.ts). */
function falsePositiveSection(result: EvaluationResult): string[] {
  const pct2 = (x: number) => `${(x * 100).toFixed(2)} %`;
  const fp = result.falsePositives;
  const ci = (r: { low: number; high: number }) => `${pct2(r.low)}–${pct2(r.high)}`;
  if (!fp) {
    return [
      "Clean false-positive rate at calibration's thresholds, on these images: " +
        Object.entries(result.cleanFalsePositiveRate)
          .map(([k, v]) => `${k} ${pct2(v)}`)
          .join(', ') +
        '.',
    ];
  }
  const crossFitted = fp.rows.some((r) => r.crossFitted);
  return [
    '## Clean false-positive rate on unseen images',
    '',
    `Thresholds read (split-conformal rule) on ${fp.thresholdImages} images: ${fp.thresholdSource}. ` +
      `Measured on all ${fp.images} images of ${fp.source}, none of which set a threshold; intervals are exact ` +
      '(Clopper–Pearson) at 95 %. "Promised" is the rate the conformal rule delivers on images like the threshold images, ' +
      'with its 95 % interval over the draw of those images.' +
      (crossFitted
        ? ' "Cross-fitted" also counts the threshold images, against thresholds read on the evaluation images: every image of both parts once.'
        : ''),
    '',
    `| target | detector | threshold | flagged | measured (95 % CI) | promised (95 %) |${crossFitted ? ' cross-fitted (95 % CI) |' : ''}`,
    `|---|---|---|---|---|---|${crossFitted ? '---|' : ''}`,
    ...fp.rows.map(
      (r) =>
        `| ${pct2(r.target)} | ${r.detector === COMBINED ? `**${r.detector}**` : r.detector} | ${r.threshold.toPrecision(4)} | ${r.flagged} / ${r.images} | ` +
        `${pct2(r.measured.rate)} (${ci(r.measured)}) | ${pct2(r.promised.rate)} (${ci(r.promised)}) |` +
        (crossFitted
          ? r.crossFitted
            ? ` ${pct2(r.crossFitted.rate)} of ${r.crossFitted.images} (${ci(r.crossFitted)}) |`
            : ' – |'
          : ''),
    ),
  ];
}

function attackTable(result: EvaluationResult): string[] {
  const lines = [
    '| attack | ε | steps | success | misclassified | evaded combined | mean L∞ / L2 | combined AUROC (95 % bootstrap) | combined TPR@5 % | FS AUROC | low-pass acc. | seconds |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const a of result.attacks) {
    const c = detector(a, COMBINED);
    lines.push(
      `| ${a.name}${a.adaptive ? ' (adaptive)' : ''} | ${a.epsilon ?? '∞'} | ${a.steps ?? '–'} | ${pct(a.successRate)} | ` +
        `${pct(a.misclassificationRate)} | ${pct(a.evasionRate)} | ${a.meanLinf.toFixed(3)} / ${a.meanL2.toFixed(2)} | ` +
        `${f3(c.auroc)}${c.aurocInterval ? ` (${f3(c.aurocInterval[0])}–${f3(c.aurocInterval[1])})` : ''} | ${f3(c.tprAtFpr5)} | ${f3(detector(a, FEATURE_SQUEEZING).auroc)} | ${pct(defense(a, 'lowpass').accuracy)} | ${a.seconds.toFixed(0)} |`,
    );
  }
  return lines;
}

function detectorTable(result: EvaluationResult): string[] {
  const names = result.attacks[0]?.detectors.map((d) => d.name) ?? [];
  const lines = [`| attack | ${names.join(' | ')} |`, `|---|${names.map(() => '---').join('|')}|`];
  for (const a of result.attacks)
    lines.push(`| ${a.name} | ${a.detectors.map((d) => `${f3(d.auroc)} / ${f3(d.tprAtFpr5)}`).join(' | ')} |`);
  return lines;
}

function defenseTable(result: EvaluationResult): string[] {
  const names = result.defensesClean.map((d) => d.name);
  const lines = [
    `| | ${names.join(' | ')} |`,
    `|---|${names.map(() => '---').join('|')}|`,
    `| clean (no attack) | ${result.defensesClean.map((d) => `${pct(d.cleanAccuracy)} (${((d.cleanAccuracy - result.cleanAccuracy) * 100).toFixed(1)} pts)`).join(' | ')} |`,
  ];
  for (const a of result.attacks)
    lines.push(`| ${a.name} | ${names.map((n) => pct(defense(a, n).accuracy)).join(' | ')} |`);
  return lines;
}

function researchTables(result: EvaluationResult): string[] {
  const lines = [
    '### Perturbation spectra against class spectra',
    '',
    'Pearson correlation (log power, DC excluded) of each successful perturbation with the mean clean spectrum of the class it',
    'was pushed to, against the other classes (origin excluded); "best" is the share of images whose perturbation correlates',
    'more with the target class than with every other class.',
    '',
    '| attack | images | corr. with target class | corr. with other classes | target best |',
    '|---|---|---|---|---|',
  ];
  for (const a of result.attacks)
    lines.push(
      `| ${a.name} | ${a.spectrum.images} | ${f3(a.spectrum.targetCorrelation)} | ${f3(a.spectrum.otherCorrelation)} | ${pct(a.spectrum.targetIsBest)} |`,
    );
  const layers = result.attacks[0]?.trajectory.map((t) => t.layer) ?? [];
  lines.push(
    '',
    '### Feature trajectory',
    '',
    'Per layer: distance of the adversarial activations to the origin-class and target-class expectations, each relative to the',
    'mean distance of clean images of that class (1 = typical of the class); and the share whose nearest expectation is the target.',
    '',
    `| attack | ${layers.map((l) => `${l}: origin → target (nearest = target)`).join(' | ')} |`,
    `|---|${layers.map(() => '---').join('|')}|`,
  );
  for (const a of result.attacks)
    lines.push(
      `| ${a.name} | ${a.trajectory.map((t) => `${t.adversarialToOrigin.toFixed(2)} → ${t.adversarialToTarget.toFixed(2)} (${pct(t.nearestIsTarget)})`).join(' | ')} |`,
    );
  lines.push(
    '',
    '### Promotion and suppression',
    '',
    "Per successful adversarial image: the drop of the true class's logit against the rise of the adversarial class's logit;",
    'suppression-dominated when the drop is ≥ 2/3 of (drop⁺ + rise⁺), promotion-dominated when ≤ 1/3, else balanced.',
    '',
    '| attack | suppression | balanced | promotion | mean drop | mean rise |',
    '|---|---|---|---|---|---|',
  );
  for (const a of result.attacks) {
    const p = a.promotionSuppression;
    lines.push(
      `| ${a.name} | ${pct(p.suppression)} | ${pct(p.balanced)} | ${pct(p.promotion)} | ${p.meanDrop.toFixed(2)} | ${p.meanRise.toFixed(2)} |`,
    );
  }
  return lines;
}

async function writePlots(
  dir: string,
  result: EvaluationResult,
  artifacts: EvaluationArtifacts,
  ctx: ReportContext,
): Promise<string[]> {
  const written: string[] = [];
  const save = (name: string, png: Buffer) => {
    fs.writeFileSync(path.join(dir, name), png);
    written.push(name);
  };
  for (const [attack, curves] of Object.entries(artifacts.roc))
    save(`roc-${attack.replace(/[^\w.-]+/g, '_')}.png`, await rocPlot(`ROC — ${attack}`, curves));
  const spectraFor = [plainPgd(result)?.name, ...Object.keys(artifacts.perturbationSpectra)].find(
    (name) => name && artifacts.perturbationSpectra[name],
  );
  // A merge of parts has no spectra to draw (./merge.ts): only the plots its scores and curves make.
  if (spectraFor) {
    const tile = (label: string, values: Float32Array) => ({ label, ...shrunk(values, ctx.imageShape) });
    const tiles = [
      ...artifacts.cleanSpectra.map((v, c) => tile(`clean ${ctx.labels[c]}`, v)),
      ...artifacts.adversarialSpectra[spectraFor].map((v, c) => tile(`adv → ${ctx.labels[c]}`, v)),
      ...artifacts.perturbationSpectra[spectraFor].map((v, c) => tile(`δ → ${ctx.labels[c]}`, v)),
    ];
    // Spectra are already log10 power: shift only.
    save(
      'spectra.png',
      await heatmapGrid(
        `Mean log power spectra (${spectraFor}): clean by class, adversarial and perturbation by target class`,
        tiles,
        { columns: ctx.labels.length, shift: true },
      ),
    );
  }
  const layers = result.attacks[0]?.trajectory.map((t) => t.layer) ?? [];
  const series = result.attacks
    .filter((a) => ['fgsm', 'pgd', 'cw'].includes(a.method) && !a.adaptive && !a.targeted)
    .flatMap((a) => [
      { name: `${a.name}: to origin`, x: layers, y: a.trajectory.map((t) => t.adversarialToOrigin) },
      { name: `${a.name}: to target`, x: layers, y: a.trajectory.map((t) => t.adversarialToTarget) },
    ]);
  if (series.length)
    save(
      'trajectory.png',
      await linePlot(
        'Feature trajectory: distance to class expectations (1 = typical clean)',
        'layer',
        'relative distance',
        series,
      ),
    );
  // Convergence: an attack whose loss still falls at its last step was stopped too early.
  for (const [attack, losses] of Object.entries(artifacts.lossCurves)) {
    const every = Math.max(1, Math.ceil(losses.length / 40));
    const steps = losses.map((_, k) => k).filter((k) => k % every === 0 || k === losses.length - 1);
    save(
      `loss-${attack.replace(/[^\w.-]+/g, '_')}.png`,
      await linePlot(`Attack loss per step — ${attack} (restarts one after another)`, 'step', 'mean loss', [
        { name: attack, x: steps.map(String), y: steps.map((k) => losses[k]) },
      ]),
    );
  }
  return written;
}

export async function writeReport(
  dir: string,
  result: EvaluationResult,
  artifacts: EvaluationArtifacts,
  ctx: ReportContext,
): Promise<{ markdown: string; json: string; plots: string[] }> {
  fs.mkdirSync(dir, { recursive: true });
  const goals = checkGoals(result);
  const json = path.join(dir, 'evaluation.json');
  const context = { ...ctx, calibration: calibrationRecord(ctx.calibration) };
  fs.writeFileSync(json, JSON.stringify({ ...result, goals, context }, null, 2) + '\n');
  // Seven significant digits: the ranking AUROC reads survives, the file stays a few hundred kB.
  if (artifacts.scores)
    fs.writeFileSync(
      path.join(dir, 'scores.json'),
      JSON.stringify(artifacts.scores, (_, v) => (typeof v === 'number' ? Number(v.toPrecision(7)) : v)) + '\n',
    );
  const plots = await writePlots(dir, result, artifacts, ctx);
  const lp = ctx.calibration.lowPass;
  const md = [
    '# advsieve evaluation report',
    '',
    ...(ctx.parts
      ? [
          `Merged from ${ctx.parts.length} parts run apart (\`${ctx.command}\`, ${ctx.date}); counts are summed, ` +
            (ctx.parts.every((p) => p.scores)
              ? 'AUROC, TPR and ROC read again on the pooled scores, '
              : "AUROC and TPR at 5 % n/a (they need every part's per-image scores, and a part was written before evaluate kept them), the TPR at the deployed threshold pooled from counts, ") +
            `means weighted by their images; the seconds are the parts' summed (${result.seconds.toFixed(0)} s on backend ${ctx.backend}), not a wall time:`,
          '',
          ...ctx.parts.map(
            (p) =>
              `- images ${p.offset}–${p.offset + p.images - 1} of the draw: \`${p.command}\` (${p.seconds.toFixed(0)} s)`,
          ),
          '',
        ]
      : [
          `Command: \`${ctx.command}\` — ${ctx.date}, ${result.seconds.toFixed(0)} s wall time on backend ${ctx.backend}.`,
        ]),
    `Model ${ctx.model.id} (SHA-256 ${ctx.model.sha256.slice(0, 12)}…), calibration of ${ctx.calibration.createdAt} (on other images than these)${ctx.calibration.data?.thresholds ? `, thresholds read ${ctx.calibration.data.thresholds.readAt} on ${ctx.calibration.data.thresholds.source}` : ''}.`,
    `${result.images} ${ctx.images ? `images of ${ctx.images}` : 'official test images'} (seed ${result.seed}); clean accuracy **${pct(result.cleanAccuracy)}**.`,
    `Low-pass defense as calibrated: ${lp.kind} mask, radius ${lp.radius} cycles/pixel.`,
    '',
    'Success and detection are measured on the test images the model classified right; AUROC positives are the misclassified',
    'adversarial images, negatives all clean test images; TPR@5 % uses the threshold that holds 5 % FPR on these clean images.',
    'Adaptive rows count a success only when the image is misclassified *and* not flagged by the combined verdict at',
    "calibration's threshold (the deployed one).",
    '',
    '## Goals',
    '',
    '| goal | measured | met |',
    '|---|---|---|',
    ...goals.map((g) => `| ${g.goal} | ${g.measured} | ${g.met ? 'yes' : `**no** — ${g.shortfall}`} |`),
    '',
    '## Attacks',
    '',
    ...attackTable(result),
    '',
    '## Detectors: AUROC / TPR at 5 % FPR',
    '',
    ...detectorTable(result),
    '',
    ...falsePositiveSection(result),
    '',
    '## Defenses: accuracy',
    '',
    ...defenseTable(result),
    '',
    '## Research claims, measured on this model',
    '',
    ...researchTables(result),
    '',
    '## Plots',
    '',
    ...plots.map((p) => `![${p}](${p})`),
    '',
  ].join('\n');
  const markdown = path.join(dir, 'evaluation.md');
  fs.writeFileSync(markdown, md);
  return { markdown, json, plots };
}
