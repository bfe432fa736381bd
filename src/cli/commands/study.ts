/**
 * `advsieve study causes`: the causes study (src/study/causes.ts) — trains or loads the variants,
 * measures them, judges the paper's claims and writes reports/causes.{md,json} and plots.
 */
import * as path from 'path';
import { Command } from 'commander';
import { DEFAULT_FASHION_MNIST_DIR } from '../../data/fashionMnist';
import { initBackend } from '../../engine/backends';
import { CausesSettings, DEFAULT_CAUSES_SETTINGS, QUICK_CAUSES_SETTINGS, runCausesStudy } from '../../study/causes';
import { writeCausesReport } from '../../study/causesReport';
import { STUDY_DATASETS, STUDY_VARIANTS } from '../../study/variants';
import { PACKAGE_ROOT } from '../../util/paths';
import { intOption } from '../options';
import { stageProgress } from '../progress';

interface StudyCommandOptions {
  quick?: boolean;
  out: string;
  cache: string;
  data: string;
  epochs?: number;
  workers?: number;
  variants?: string;
  datasets?: string;
  json?: boolean;
}

/** The ids in a comma-separated list, each checked against the known ones. */
function pickIds<T extends { id: string }>(list: string | undefined, known: readonly T[], what: string): readonly T[] {
  if (!list) return known;
  return list.split(',').map((id) => {
    const found = known.find((k) => k.id === id.trim());
    if (!found) throw new Error(`unknown ${what} '${id}'; expected one of ${known.map((k) => k.id).join(', ')}`);
    return found;
  });
}

export function registerStudy(program: Command): void {
  const study = program.command('study').description('research studies over trained model variants');
  study
    .command('causes')
    .description(
      "the causes of adversarial examples (linearity, softmax's one-sum constraint, class geometry): trains or loads the model variants on Fashion-MNIST and on reference data sets of known geometry, measures them and writes reports/causes.{md,json} and plots",
    )
    .option(
      '--quick',
      'tiny sets, one epoch, few images: the whole pipeline in well under a minute (figures meaningless)',
    )
    .option('--out <dir>', 'report directory', path.join(PACKAGE_ROOT, 'reports'))
    .option(
      '--cache <dir>',
      'trained models are kept here, keyed by their settings',
      path.join(PACKAGE_ROOT, '.cache', 'study'),
    )
    .option('--data <dir>', 'directory with the Fashion-MNIST IDX files', DEFAULT_FASHION_MNIST_DIR)
    .option('--epochs <n>', 'training epochs per model (default 3; --quick 1)', intOption)
    .option('--workers <n>', 'data-parallel training threads (default: up to 2)', intOption)
    .option('--variants <ids>', `comma-separated variants (default all: ${STUDY_VARIANTS.map((v) => v.id).join(', ')})`)
    .option(
      '--datasets <ids>',
      `comma-separated data sets (default all: ${STUDY_DATASETS.map((d) => d.id).join(', ')})`,
    )
    .option('--json', 'print the result as one JSON line at the end')
    .action(async (opts: StudyCommandOptions) => {
      const started = Date.now();
      await initBackend();
      const base = opts.quick ? QUICK_CAUSES_SETTINGS : DEFAULT_CAUSES_SETTINGS;
      const settings: CausesSettings = {
        ...base,
        epochs: opts.epochs ?? base.epochs,
        workers: opts.workers ?? base.workers,
      };
      const progress = stageProgress('study causes', started);
      const result = await runCausesStudy({
        settings,
        cacheDir: opts.cache,
        dataDir: opts.data,
        variants: pickIds(opts.variants, STUDY_VARIANTS, 'variant'),
        datasets: pickIds(opts.datasets, STUDY_DATASETS, 'data set'),
        onStage: progress.onStage,
      });
      progress.stop();
      const wallSeconds = (Date.now() - started) / 1000;
      const files = await writeCausesReport(result, opts.out, {
        command: `npx advsieve study causes ${process.argv.slice(4).join(' ')}`.trim(),
        date: new Date().toISOString().slice(0, 10),
        wallSeconds,
      });
      for (const c of result.claims) process.stdout.write(`${c.id}: ${c.verdict}\n`);
      process.stdout.write(
        `${result.runs.length} models (${result.trainedModels} trained, ${result.cachedModels} cached) in ` +
          `${(wallSeconds / 60).toFixed(1)} min; wrote ${files.length} files: ${files.slice(0, 2).join(', ')} and plots\n`,
      );
      if (opts.json) process.stdout.write(JSON.stringify({ wallSeconds, files, claims: result.claims }) + '\n');
    });
}
