/**
 * Writes the causes study: `causes.md` (the claims with their verdicts, then the figures per model),
 * `causes.json` (the same, less the per-image confidences) and PNG plots in `causes/`, drawn by
 * src/report/plots.ts as the evaluation's are.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { linePlot, LineSeries } from '../report/plots';
import { vulnerability } from './claims';
import type { CausesResult, RunResult } from './results';
import type { AttackCurve } from './robustness';

export interface ReportContext {
  readonly command: string;
  readonly date: string;
  /** Seconds the whole command took (training, measuring and writing). */
  readonly wallSeconds: number;
}

const pct = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : `${(100 * x).toFixed(1)} %`;
const num = (x: number | null | undefined, digits = 3) =>
  x === null || x === undefined ? '–' : Number.isFinite(x) ? x.toFixed(digits) : x > 0 ? '∞' : '–';
const runName = (r: RunResult) => `${r.dataset} × ${r.variant}`;
const curve = (r: RunResult, attack: AttackCurve['attack']) => r.attacks.find((a) => a.attack === attack)!;

/** JSON without the per-image confidences (they serve the intervals, and would swell the file). */
export function resultJson(result: CausesResult, context: ReportContext): string {
  return (
    JSON.stringify({ ...context, ...result }, (key, value: unknown) => (key === 'confidences' ? undefined : value), 2) +
    '\n'
  );
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

function settingsSection(result: CausesResult): string {
  const s = result.settings;
  return table(
    ['setting', 'value'],
    [
      [
        'training images',
        `Fashion-MNIST: first ${s.fashionTrainImages} of the training split; reference sets: ${s.referenceTrainImages}`,
      ],
      [
        'test images',
        `${s.testImages} (clean accuracy, geometry, detection's negatives); the first ${s.attackImages} attacked (those classified right)`,
      ],
      [
        'model',
        `CNN conv ${s.model.conv1Filters}/${s.model.conv2Filters}, fc ${s.model.hiddenUnits}, dropout ${s.model.dropout}; ${s.epochs} epochs, batch ${s.batchSize}, Adam ${s.learningRate} (cosine), seed ${s.seed}`,
      ],
      [
        'FGSM / PGD budgets (L∞)',
        `${s.linfBudgets.join(', ')}; PGD ${s.pgdSteps} steps, step 2.5ε/steps, random start`,
      ],
      [
        'CW-L2',
        `unbounded, ${s.cwSteps} steps × 3 binary-search steps; success within L2 budgets ${s.l2Budgets.join(', ')}`,
      ],
      [
        'detection',
        `calibration per model on its training images: fit ${s.calibration.fit}, hold-out ${s.calibration.holdout}, ${s.calibration.attacked} attacked; AUROC on FGSM and PGD at ε ${s.detectionEpsilon} and CW-L2`,
      ],
    ],
  );
}

function datasetSection(result: CausesResult): string {
  return table(
    [
      'data set',
      'training images',
      'd',
      'separation Δ',
      'spread σ',
      'Δ / σ',
      'L∞ to Bayes boundary',
      'L2 to Bayes boundary',
      'clipped pixels',
    ],
    result.datasets.map((d) => {
      const g = d.geometry;
      return g
        ? [
            d.id,
            String(d.trainImages),
            String(g.dimension),
            num(g.separation, 2),
            num(g.spread, 2),
            num(g.separation / g.spread, 1),
            num(g.linfToBoundary),
            num(g.l2ToBoundary, 2),
            pct(g.clippedShare),
          ]
        : [d.id, String(d.trainImages), '–', '–', '–', '–', '–', '–', '–'];
    }),
  );
}

function claimsSection(result: CausesResult): string {
  return result.claims
    .map(
      (c) =>
        `### ${c.id}: **${c.verdict}**\n\n${c.statement}\n\n*Test:* ${c.test}\n\n${c.evidence.map((e) => `- ${e}`).join('\n')}`,
    )
    .join('\n\n');
}

function summarySection(result: CausesResult): string {
  const e = result.settings.detectionEpsilon;
  return table(
    [
      'model',
      'clean accuracy',
      'clean confidence',
      `PGD success ε ${e}`,
      `adversarial confidence (PGD ε ${e})`,
      'PGD vulnerability',
      'CW median L2',
      'combined AUROC (PGD)',
      'training',
    ],
    result.runs.map((r) => {
      const pgd = curve(r, 'pgd').rows.find((row) => row.epsilon === e);
      const auc = r.detection.rows.find((row) => row.attack === `pgd-${e}`)?.auroc.combined;
      return [
        runName(r),
        pct(r.cleanAccuracy),
        num(r.cleanConfidence),
        pct(pgd?.successWithinBudget),
        num(pgd?.meanConfidence),
        pct(vulnerability(r)),
        num(r.geometry.cwBoundaryL2),
        num(auc),
        r.model.cached ? `cached (${r.model.trainSeconds.toFixed(0)} s)` : `${r.model.trainSeconds.toFixed(0)} s`,
      ];
    }),
  );
}

function attackSection(result: CausesResult, attack: AttackCurve['attack']): string {
  const budgets = curve(result.runs[0], attack).rows.map((r) => r.epsilon);
  return table(
    ['model', 'attacked', ...budgets.map((b) => `${attack === 'cw' ? 'L2' : 'ε'} ${b}`)],
    result.runs.map((r) => {
      const c = curve(r, attack);
      return [
        runName(r),
        String(c.images),
        ...c.rows.map(
          (row) =>
            `${pct(row.successWithinBudget)}${attack === 'cw' || row.successRate === row.successWithinBudget ? '' : ` (run ${pct(row.successRate)})`} / ${num(row.meanConfidence, 2)}`,
        ),
      ];
    }),
  );
}

function geometrySection(result: CausesResult): string {
  return table(
    [
      'model',
      'hidden: mean / min distance',
      'hidden: spread',
      'hidden: ratio',
      'logits: mean / min distance',
      'logits: spread',
      'logits: ratio',
      'logit margin mean / median',
      'boundary L2: linear / CW',
    ],
    result.runs.map((r) => {
      const [h, l] = r.geometry.layers;
      return [
        runName(r),
        `${num(h.meanDistance, 2)} / ${num(h.minDistance, 2)}`,
        num(h.withinSpread, 2),
        num(h.separationRatio, 2),
        `${num(l.meanDistance, 2)} / ${num(l.minDistance, 2)}`,
        num(l.withinSpread, 2),
        num(l.separationRatio, 2),
        `${num(r.geometry.logitMargin.mean, 2)} / ${num(r.geometry.logitMargin.median, 2)}`,
        `${num(r.geometry.linearBoundaryL2, 2)} / ${num(r.geometry.cwBoundaryL2, 2)}`,
      ];
    }),
  );
}

function detectionSection(result: CausesResult): string {
  const detectors = result.runs[0].detection.detectors;
  return result.runs[0].detection.rows
    .map((_, k) => {
      const attack = result.runs[0].detection.rows[k].attack;
      return `**${attack}** (positives: its successful images; negatives: the clean test images)\n\n${table(
        ['model', 'positives', ...detectors],
        result.runs.map((r) => {
          const row = r.detection.rows[k];
          return [runName(r), String(row.positives), ...detectors.map((d) => num(row.auroc[d]))];
        }),
      )}`;
    })
    .join('\n\n');
}

function rejectionSection(result: CausesResult): string {
  const runs = result.runs.filter((r) => r.rejection);
  if (runs.length === 0) return 'No model with a density head (MLP-PNN) was trained.';
  const attacks = runs[0].rejection!.rows.map((row) => row.attack);
  return table(
    ['model', 'clean rejected', ...attacks.map((a) => `${a}: rejected / AUROC`)],
    runs.map((r) => [
      runName(r),
      `${pct(r.rejection!.cleanRejected)} of ${r.rejection!.cleanImages}`,
      ...r.rejection!.rows.map((row) => `${pct(row.rejected)} of ${row.images} / ${num(row.auroc)}`),
    ]),
  );
}

const safe = (s: string) => s.replace(/[^\w.-]+/g, '_');

/** The plots: success and adversarial confidence against the budget per data set, detection AUROCs, the geometry. */
async function writePlots(result: CausesResult, dir: string): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  const save = async (name: string, png: Promise<Buffer>) => {
    fs.writeFileSync(path.join(dir, name), await png);
    written.push(name);
  };
  // One plot per data set with several variants; one of the baseline across the reference geometries.
  const groups = new Map<string, RunResult[]>();
  for (const d of result.datasets) {
    const runs = result.runs.filter((r) => r.dataset === d.id);
    if (runs.length > 1) groups.set(d.id, runs);
  }
  const reference = new Set(result.datasets.filter((d) => d.kind === 'reference').map((d) => d.id));
  const geometryRuns = result.runs.filter((r) => reference.has(r.dataset) && r.variant === 'baseline');
  if (geometryRuns.length > 0) groups.set('reference-geometry', geometryRuns);
  for (const [key, runs] of groups) {
    const label = (r: RunResult) => (key === 'reference-geometry' ? r.dataset : r.variant);
    const series = (value: (row: AttackCurve['rows'][number]) => number | null): LineSeries[] =>
      runs.map((r) => {
        const rows = curve(r, 'pgd').rows;
        return { name: label(r), x: rows.map((row) => String(row.epsilon)), y: rows.map((row) => value(row) ?? NaN) };
      });
    await save(
      `pgd-success-${safe(key)}.png`,
      linePlot(
        `PGD success — ${key}`,
        'L∞ budget ε',
        'success within budget',
        series((row) => row.successWithinBudget),
      ),
    );
    await save(
      `pgd-confidence-${safe(key)}.png`,
      linePlot(
        `Confidence of successful PGD predictions — ${key}`,
        'L∞ budget ε',
        'mean confidence',
        series((row) => row.meanConfidence),
      ),
    );
  }
  const e = result.settings.detectionEpsilon;
  const detectors = result.runs[0].detection.detectors;
  await save(
    'detection-auroc.png',
    linePlot(
      `Detection AUROC on PGD ε ${e}`,
      'detector',
      'AUROC',
      result.runs.map((r) => {
        const row = r.detection.rows.find((x) => x.attack === `pgd-${e}`);
        return { name: runName(r), x: [...detectors], y: detectors.map((d) => row?.auroc[d] ?? NaN) };
      }),
    ),
  );
  await save(
    'geometry.png',
    linePlot('Class separation against vulnerability', 'model', 'value', [
      {
        name: 'logits: separation ratio / 10',
        x: result.runs.map(runName),
        y: result.runs.map((r) => r.geometry.layers[1].separationRatio / 10),
      },
      { name: 'PGD vulnerability', x: result.runs.map(runName), y: result.runs.map(vulnerability) },
    ]),
  );
  return written;
}

export async function writeCausesReport(
  result: CausesResult,
  outDir: string,
  context: ReportContext,
): Promise<string[]> {
  fs.mkdirSync(outDir, { recursive: true });
  const plotDir = path.join(outDir, 'causes');
  const plots = await writePlots(result, plotDir);
  const json = path.join(outDir, 'causes.json');
  fs.writeFileSync(json, resultJson(result, context));
  const minutes = (context.wallSeconds / 60).toFixed(1);
  const md = `# The causes of adversarial examples, tested

The paper behind advsieve names three causes — model linearity, the one-sum constraint of softmax,
and the geometry of the categories — and controls each with a technique. This report trains the
variants that switch a cause (\`src/study/variants.ts\`) on Fashion-MNIST and on reference data sets
of known geometry (\`src/data/referenceDatasets.ts\`), and measures each: clean accuracy, attack
success and the confidence of the adversarial predictions, the geometry of its classes, and how well
each advsieve detector sees its adversarial images. Made by \`${context.command}\` on ${context.date}:
**${minutes} min** wall time (${result.trainedModels} models trained, ${result.cachedModels} loaded from the cache), ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}).

Conventions: attacked are the first ${result.settings.attackImages} test images the model classifies right;
"success within budget" counts an image broken by a run at that budget or a smaller one (an attacker
may always use less), "run" the run at that budget alone; confidence is the probability the model
gives its prediction (its own output layer). Intervals are 95 %. The sets are small: read differences
of a few points as noise unless the interval says otherwise.

## Claims

${claimsSection(result)}

## Summary per model

${summarySection(result)}

PGD vulnerability: mean success within budget over the non-zero L∞ budgets.

## Settings

${settingsSection(result)}

## Data sets

${datasetSection(result)}

For the reference sets Δ, σ and d are set, not estimated: every pair of class means is Δ apart in pixel
L2, the Bayes boundary between two classes is Δ / 2 from each mean, and the L∞ budget that reaches it
from a mean is Δ / (2 ‖w‖₁) for the unit direction w between the means (averaged over pairs).

## Attack success / mean confidence of the successful adversarial predictions

FGSM:

${attackSection(result, 'fgsm')}

PGD:

${attackSection(result, 'pgd')}

CW-L2 (success with a perturbation of L2 norm within the budget):

${attackSection(result, 'cw')}

## Geometry of the classes (clean test images)

Distances between class expectations (mean activation per class) at the last hidden layer and at the
logits; spread: RMS distance of an image to its class expectation; ratio: mean distance / spread.
Boundary L2: median over the attacked images of the linearised distance to the runner-up's boundary,
and of the smallest CW adversarial (∞ where CW found none for half of them).

${geometrySection(result)}

## Detection AUROC per detector

${detectionSection(result)}

## "None of the classes" (MLP-PNN's p(none) ≥ 0.5)

${rejectionSection(result)}

## Figures

${plots.map((p) => `- [causes/${p}](causes/${p})`).join('\n')}
`;
  fs.writeFileSync(path.join(outDir, 'causes.md'), md);
  return [path.join(outDir, 'causes.md'), json, ...plots.map((p) => path.join(plotDir, p))];
}
