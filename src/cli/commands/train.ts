/** `advsieve train`: trains the reference CNN on Fashion-MNIST and writes models/<id>/ with its card. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { DEFAULT_FASHION_MNIST_DIR, FASHION_LABELS, loadFashionMnist } from '../../data/fashionMnist';
import { activeBackend, describeBackend, initBackend } from '../../engine/backends';
import { L2NormalizedDense } from '../../engine/layers/l2NormalizedDense';
import { PnnHead } from '../../engine/layers/pnnHead';
import { saveModel } from '../../engine/modelStore';
import {
  ADVERSARIAL_METHODS,
  AdversarialMethod,
  adversarialSchedule,
  AdversarialTrainingOptions,
} from '../../train/adversarialTraining';
import { robustAccuracy, RobustAccuracy, robustChunksText, robustIntervalText } from '../../train/robustAccuracy';
import { accuracy, train, TrainResult } from '../../train/trainer';
import { HIDDEN_ACTIVATIONS, HiddenActivation } from '../../train/fashionCnn';
import { logger } from '../../util/logger';
import { progressBar } from '../progress';
import { InvalidArgumentError } from 'commander';
import { choiceOption, floatOption, intOption, scheduleOption } from '../options';
import { LOSSES, LossKind } from '../../train/losses';
import {
  ARCHITECTURES,
  Architecture,
  DEFAULT_L2_SCALE,
  DEFAULT_PROTOTYPES_PER_CLASS,
  describeVariant,
  HEADS,
  HeadKind,
  isDefaultVariant,
  L2_NORMS,
  L2Norm,
} from '../../train/modelVariant';
import { trainedModelMetadata } from '../../train/trainedMetadata';
import { DEFAULT_BACKGROUND_QUANTILE, noneShare } from '../../train/pnnBackground';

export interface TrainCommandOptions {
  data: string;
  out: string;
  epochs: number;
  batchSize: number;
  lr: number;
  lrSchedule: 'exponential' | 'cosine';
  lrDecay: number;
  warmupEpochs: number;
  dropout: number;
  conv1Filters: number;
  conv2Filters: number;
  hiddenUnits: number;
  activation: HiddenActivation;
  augment: boolean;
  seed: number;
  workers: number;
  limit?: number;
  adversarial?: AdversarialMethod;
  epsilon: number;
  adversarialSteps?: number;
  adversarialStepSize?: number;
  robustImages: number;
  robustEpsilon?: number;
  arch: Architecture;
  l2norm: L2Norm;
  l2Scale: number;
  head: HeadKind;
  prototypes: number;
  noneShare: number;
  loss: LossKind;
  weightAverage?: number;
}

/** Test images the last step's weights are attacked on, beside the averaged model's full check. */
const FINAL_WEIGHTS_ROBUST_IMAGES = 2000;

function adversarialOption(value: string): AdversarialMethod {
  if (!(ADVERSARIAL_METHODS as readonly string[]).includes(value))
    throw new InvalidArgumentError(`expected one of ${ADVERSARIAL_METHODS.join(', ')}, got '${value}'`);
  return value as AdversarialMethod;
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description(
      'train the reference CNN (or a causes-study variant) on Fashion-MNIST and write the model, its metadata and model card',
    )
    .option('--data <dir>', 'directory with the Fashion-MNIST IDX files', DEFAULT_FASHION_MNIST_DIR)
    .option('--out <dir>', 'output model directory', path.join('models', 'fashion-cnn'))
    .option('--epochs <n>', 'training epochs', intOption, 16)
    .option('--batch-size <n>', 'global batch size (split across workers)', intOption, 128)
    .option('--lr <x>', 'peak Adam learning rate', floatOption, 2e-3)
    .option('--lr-schedule <name>', "'cosine' (warm-up, then cosine decay) or 'exponential'", scheduleOption, 'cosine')
    .option('--lr-decay <x>', "learning rate multiplier after each epoch ('exponential')", floatOption, 0.8)
    .option('--warmup-epochs <n>', "epochs of linear warm-up ('cosine')", floatOption, 1)
    .option('--dropout <x>', 'dropout rate before and after fc1', floatOption, 0.25)
    .option('--conv1-filters <n>', "the CNN's conv1 filters", intOption, 32)
    .option('--conv2-filters <n>', "the CNN's conv2 filters", intOption, 64)
    .option(
      '--hidden-units <n>',
      "width of the penultimate features (the CNN's fc1, the MLP's fc2): capacity adversarial training can use",
      intOption,
      128,
    )
    .option(
      '--activation <name>',
      "the hidden layers' activation: 'relu', or 'swish' (x·sigmoid(x), smooth; Xie et al. 2020. Measured with FGSM-RS training: 61.9 % under PGD-40 against ReLU's 73.6 %)",
      choiceOption(HIDDEN_ACTIVATIONS),
      'relu',
    )
    .option(
      '--augment',
      'random horizontal flips and shifts of up to 2 pixels (measured: lower test accuracy at 15 epochs)',
    )
    .option('--seed <n>', 'random seed (weights, shuffling, dropout)', intOption, 1)
    .option(
      '--workers <n>',
      'data-parallel worker threads (one per core)',
      intOption,
      Math.min(2, os.availableParallelism()),
    )
    .option('--limit <n>', 'train on the first N training images only', intOption)
    .option(
      '--adversarial <method>',
      "adversarial training: 'fgsm-rs' (FGSM from a random start, Wong et al. 2020), 'pgd' (Madry et al. 2018) or 'atta' (each image's perturbation carried from epoch to epoch, one step of ε/2 a visit; Zheng et al. 2020)",
      adversarialOption,
    )
    .option('--epsilon <x>', 'L∞ radius of the adversarial training perturbations', floatOption, 0.1)
    .option(
      '--adversarial-steps <n>',
      "iterations of the inner attack ('pgd', default 7; 'atta', per visit, default 1)",
      intOption,
    )
    .option(
      '--adversarial-step-size <x>',
      'step size of the inner attack (default 1.25ε FGSM-RS, 2.5ε/steps PGD, ε/2 ATTA)',
      floatOption,
    )
    .option(
      '--robust-images <n>',
      'after adversarial training, measure accuracy under PGD-40 (random start, ε as trained unless --robust-epsilon) on the first N test images, 1 000 at a time (default: all of them)',
      intOption,
      10000,
    )
    .option(
      '--robust-epsilon <x>',
      'L∞ radius of that check (default: --epsilon); e.g. train at a larger ε than the one the model must resist',
      floatOption,
    )
    .option(
      '--arch <name>',
      "'cnn' (the reference CNN) or 'mlp' (fc1 256 → fc2 128 → head); docs/variants.md",
      choiceOption(ARCHITECTURES),
      'cnn',
    )
    .option(
      '--l2norm <what>',
      "L2-normalise the penultimate 'features', the class 'weights', or 'both' (logits = s·cos), or 'none'",
      choiceOption(L2_NORMS),
      'none',
    )
    .option('--l2-scale <s>', 'fixed scale s of the L2-normalised logits', floatOption, DEFAULT_L2_SCALE)
    .option(
      '--head <kind>',
      "'dense' logits, or 'pnn': Gaussian kernels around learned class prototypes with a 'none of the classes' density",
      choiceOption(HEADS),
      'dense',
    )
    .option('--prototypes <n>', "PNN prototypes per class ('pnn')", intOption, DEFAULT_PROTOTYPES_PER_CLASS)
    .option(
      '--none-share <x>',
      "share of the training images the PNN's background density puts in 'none' (p(none) ≥ 0.5; 'pnn')",
      floatOption,
      DEFAULT_BACKGROUND_QUANTILE,
    )
    .option(
      '--loss <name>',
      "'softmax' cross-entropy, or 'ovr': one-vs-rest sigmoid cross-entropy (no one-sum constraint; probs are per-class sigmoids)",
      choiceOption(LOSSES),
      'softmax',
    )
    .option(
      '--weight-average <decay>',
      "serve an exponential moving average of the weights with this decay (e.g. 0.9995) instead of the last step's; the card also gives the last step's accuracy, clean and under PGD-40 on the first 2 000 test images",
      floatOption,
    )
    .action(async (opts: TrainCommandOptions) => {
      await runTrain(opts);
    });
}

export async function runTrain(opts: TrainCommandOptions): Promise<void> {
  const backend = await initBackend();
  logger.info({ backend: backend.name }, describeBackend(backend));
  const test = loadFashionMnist('test', opts.data); // fail early when the data is missing
  const adversarial: AdversarialTrainingOptions | undefined = opts.adversarial
    ? {
        method: opts.adversarial,
        epsilon: opts.epsilon,
        steps: opts.adversarialSteps,
        stepSize: opts.adversarialStepSize,
      }
    : undefined;
  const bar = progressBar(
    'epoch {epoch}/{epochs} |{bar}| {value}/{total} steps  loss {loss}  {rate} samples/s  eta {eta_formatted}',
  );
  let lastEpoch = -1;
  const result = await train({
    dataDir: opts.data,
    epochs: opts.epochs,
    batchSize: opts.batchSize,
    learningRate: opts.lr,
    lrDecay: opts.lrDecay,
    lrSchedule: opts.lrSchedule,
    warmupEpochs: opts.warmupEpochs,
    model: {
      dropout: opts.dropout,
      conv1Filters: opts.conv1Filters,
      conv2Filters: opts.conv2Filters,
      hiddenUnits: opts.hiddenUnits,
      activation: opts.activation,
      arch: opts.arch,
      l2norm: opts.l2norm,
      l2Scale: opts.l2Scale,
      head: opts.head,
      prototypesPerClass: opts.prototypes,
    },
    loss: opts.loss,
    weightAverage: opts.weightAverage,
    pnnBackgroundQuantile: opts.noneShare,
    augment: opts.augment ? { flip: true, maxShift: 2 } : undefined,
    adversarial,
    seed: opts.seed,
    workers: opts.workers,
    limit: opts.limit,
    onProgress: (p) => {
      const payload = {
        epoch: p.epoch + 1,
        epochs: opts.epochs,
        loss: p.loss.toFixed(4),
        rate: p.samplesPerSec.toFixed(0),
      };
      if (p.epoch !== lastEpoch) {
        if (lastEpoch >= 0) bar.stop();
        bar.start(p.stepsPerEpoch, p.step, payload);
        lastEpoch = p.epoch;
      } else {
        bar.update(p.step, payload);
      }
    },
  });
  bar.stop();
  for (const e of result.history) {
    logger.info(
      { epoch: e.epoch + 1, loss: e.loss, trainAccuracy: e.trainAccuracy, lr: e.learningRate, seconds: e.seconds },
      'epoch done',
    );
  }
  const testAccuracy = await accuracy(result.model, test);
  // How many unseen images the PNN's background density calls "none" (1 % of the training images are, by construction).
  const noneOnTest = result.pnnBackground ? await noneShare(result.model, test) : undefined;
  let robust: RobustAccuracy | undefined;
  if (adversarial && opts.robustImages > 0) {
    robust = await robustAccuracy(result.model, test, {
      count: opts.robustImages,
      epsilon: opts.robustEpsilon ?? opts.epsilon,
      steps: 40,
    });
    logger.info(robust, 'accuracy under PGD-40');
  }
  // With averaged weights, what the last step's weights would have given: the average's effect.
  let final: { testAccuracy: number; robust?: RobustAccuracy } | undefined;
  if (result.finalModel) {
    final = { testAccuracy: await accuracy(result.finalModel, test) };
    if (robust)
      final.robust = await robustAccuracy(result.finalModel, test, {
        count: Math.min(FINAL_WEIGHTS_ROBUST_IMAGES, opts.robustImages),
        epsilon: robust.epsilon,
        steps: 40,
      });
    result.finalModel.dispose();
    logger.info(final, "the last step's weights (not served)");
  }
  const training = {
    command: `npx advsieve train ${process.argv.slice(3).join(' ')}`.trim(),
    backend: activeBackend()?.name,
    epochs: result.history.length,
    batchSize: opts.batchSize,
    learningRate: opts.lr,
    lrSchedule: opts.lrSchedule,
    lrDecay: opts.lrDecay,
    warmupEpochs: opts.warmupEpochs,
    dropout: opts.dropout,
    widths: { conv1: opts.conv1Filters, conv2: opts.conv2Filters, hidden: opts.hiddenUnits },
    activation: opts.activation,
    augment: opts.augment,
    adversarial,
    weightAverage: opts.weightAverage,
    seed: opts.seed,
    workers: opts.workers,
    trainImages: result.trainImages,
    samplesPerEpoch: result.samples / Math.max(1, result.history.length),
    wallSeconds: Math.round(result.seconds),
    samplesPerSec: Math.round(result.samplesPerSec),
    testAccuracy,
    testImages: test.count,
    robust,
    final,
    variant: describeVariant(result.variant),
    noneOnTest,
    loss: result.loss,
    date: new Date().toISOString().slice(0, 10),
    history: result.history,
  };
  const metadata = trainedModelMetadata(path.basename(opts.out), result, { training });
  const sha = await saveModel(result.model, opts.out, metadata);
  fs.writeFileSync(path.join(opts.out, 'README.md'), modelCard(path.basename(opts.out), result, training, sha));
  logger.info({ testAccuracy, wallSeconds: training.wallSeconds, out: opts.out, sha256: sha }, 'model written');
  process.stdout.write(
    `test accuracy ${(testAccuracy * 100).toFixed(2)} % on ${test.count} images; ` +
      (noneOnTest !== undefined ? `p(none) ≥ 0.5 on ${(noneOnTest * 100).toFixed(2)} % of them; ` : '') +
      (robust
        ? `under PGD-40 ε ${robust.epsilon}: ${(robust.underAttack * 100).toFixed(2)} % of the first ${robust.images}` +
          ` (95 % ${robustIntervalText(robust)}); `
        : '') +
      (final
        ? `the last step's weights (not served): ${(final.testAccuracy * 100).toFixed(2)} % clean` +
          (final.robust
            ? `, ${(final.robust.underAttack * 100).toFixed(2)} % under PGD-40 on the first ${final.robust.images}`
            : '') +
          '; '
        : '') +
      `${training.wallSeconds} s of training; written to ${opts.out}\n`,
  );
}

type CardFields = Record<string, unknown> & {
  testAccuracy: number;
  activation?: HiddenActivation;
  adversarial?: AdversarialTrainingOptions;
  robust?: RobustAccuracy;
  weightAverage?: number;
  final?: { testAccuracy: number; robust?: RobustAccuracy };
};

/** The weight-average line of the card: what is served, and what the last step's weights gave. */
function weightAverageLine(t: CardFields): string {
  if (t.weightAverage === undefined) return '';
  const f = t.final;
  const robust = f?.robust
    ? `, under the same PGD-40 ${(f.robust.underAttack * 100).toFixed(2)} % of the first ${f.robust.images} test images (95 % ${robustIntervalText(f.robust)})`
    : '';
  return `- Served weights: an exponential moving average of the trainable weights, decay ${t.weightAverage} (min(decay, (1 + t)/(10 + t)) at update t). The last step's weights, not served: ${f ? `${(f.testAccuracy * 100).toFixed(2)} % clean${robust}` : 'not measured'}.
`;
}

function adversarialSection(t: CardFields): string {
  if (!t.adversarial) return '';
  const a = t.adversarial;
  const { steps, stepSize } = adversarialSchedule(a);
  const method = {
    'fgsm-rs': 'FGSM from a uniform random start in the ε-ball (Wong, Rice & Kolter 2020)',
    pgd: `PGD with ${steps} steps from a random start (Madry et al. 2018)`,
    atta: `${steps} sign step(s) of ${stepSize} a visit from the image's perturbation of its previous visit, carried between epochs (ATTA, Zheng et al. 2020; the first visit from a uniform random start)`,
  }[a.method];
  const r = t.robust;
  return `
## Adversarial training
Every training batch was replaced by adversarial versions of itself before the weights' step:
${method}, L∞ ε = ${a.epsilon}${a.stepSize ? `, step ${a.stepSize}` : ''}, made against the model in training mode.
The train accuracy below is on those adversarial batches.
${
  r
    ? `
- **Accuracy under PGD-40** (L∞ ε = ${r.epsilon}, random start, step 2.5ε/40, against the logits, no other defense):
  **${(r.underAttack * 100).toFixed(2)} %** of the first ${r.images} test images (95 % interval ${robustIntervalText(r)}); clean on the same images: ${(r.clean * 100).toFixed(2)} %; measured in ${r.seconds.toFixed(0)} s.${
    r.chunks.length > 1 ? `\n  Per ${r.chunks[0].images} images, in test-set order: ${robustChunksText(r)}.` : ''
  }
`
    : ''
}`;
}

/** The notes column of the architecture table, per layer of the serving graph. */
function layerNote(layer: tf.layers.Layer, t: CardFields, result: TrainResult): string {
  const mlp = result.variant.arch === 'mlp';
  const config = layer.getConfig();
  const activation = t.activation === 'swish' ? 'swish (x·sigmoid(x))' : 'ReLU';
  switch (layer.name) {
    case 'conv1':
      return `3×3, same padding, ${activation}`;
    case 'conv2':
      return `3×3, same padding, ${activation}; batch norm of training folded into kernel and bias`;
    case 'pool1':
    case 'pool2':
      return '2×2 max';
    case 'fc1':
    case 'fc2':
      return mlp
        ? `${activation} (dropout ${t.dropout} after it in training)`
        : `${activation} (dropout ${t.dropout} before and after it in training)`;
    case 'probs':
      return result.probabilities === 'sigmoid'
        ? 'sigmoid per class (one-vs-rest: independent, need not sum to 1)'
        : 'softmax';
    case 'logits':
      if (layer instanceof PnnHead)
        return `PNN: class log-densities, ${layer.prototypesPerClass} Gaussian kernels per class around learned prototypes, σ = ${layer.sigma().toPrecision(3)}${layer.normalizeFeatures ? ', on L2-normalised features' : ''}`;
      if (layer instanceof L2NormalizedDense)
        return layer.normalize === 'both'
          ? `s·cos(features, class weights), s = ${layer.scale}: bounded by ±${layer.scale}`
          : layer.normalize === 'features'
            ? `linear on the L2-normalised features × s = ${layer.scale}`
            : `s·(unit-norm class weights)·features, s = ${layer.scale}`;
      return `linear${config.activation && config.activation !== 'linear' ? `, ${String(config.activation)}` : ''}`;
    default:
      return '';
  }
}

function architectureRows(result: TrainResult, t: CardFields): string[] {
  return result.model.layers.map((l) => {
    const shape = (l.outputShape as Array<number | null>).slice(1).join('×');
    return `| ${l.name} | ${shape} | ${layerNote(l, t, result)} |`;
  });
}

/** What the variant changes, for the card; empty for the default model. */
function variantSection(result: TrainResult, t: CardFields): string {
  const v = result.variant;
  if (isDefaultVariant(v) && result.loss === 'softmax') return '';
  const lines = [`## Variant (causes study, docs/variants.md)`, `${describeVariant(v)}; loss \`${result.loss}\`.`, ''];
  if (result.loss === 'ovr')
    lines.push(
      "- Trained one-vs-rest (a sigmoid binary cross-entropy per class): the served `probs` are per-class sigmoids (metadata `probabilities: 'sigmoid'`), independent of each other; an image can have every class low. Confidence is the top class's sigmoid; L1 distances between probabilities (low-pass disagreement, feature squeezing) range over [0, K], not [0, 2]: thresholds come from this model's own calibration.",
    );
  if (v.l2norm !== 'none')
    lines.push(
      `- L2 normalisation of the ${v.l2norm === 'both' ? 'penultimate features and the class weight vectors' : v.l2norm === 'features' ? 'penultimate features' : 'class weight vectors'}${v.head === 'pnn' ? '' : `, fixed scale s = ${v.l2Scale}`}.`,
    );
  const bg = result.pnnBackground;
  if (bg)
    lines.push(
      `- PNN head: the logits are class log-densities; p(none | x) = sigmoid(log b − (logsumexp(logits) − log K)) with log b = ${bg.logBackground.toPrecision(6)} (metadata \`variant.pnn.logBackground\`; \`noneProbabilityOf\` in src/engine/layers/pnnHead.ts), set so that ${(bg.quantile * 100).toFixed(1)} % of the first ${bg.images} training images have p(none) ≥ 0.5; on the ${t.testImages as number} test images, ${((t.noneOnTest as number) * 100).toFixed(2)} % have. \`probs\` are the posterior over the classes given that the image is one of them (softmax of the log-densities${result.loss === 'ovr' ? '; here sigmoids' : ''}).`,
    );
  return lines.join('\n') + '\n';
}

function modelCard(id: string, result: TrainResult, t: CardFields, sha: string): string {
  const rows = result.history.map(
    (e) =>
      `| ${e.epoch + 1} | ${e.loss.toFixed(4)} | ${(e.trainAccuracy * 100).toFixed(2)} % | ${e.learningRate.toExponential(2)} | ${e.seconds.toFixed(0)} |`,
  );
  const variant = !(isDefaultVariant(result.variant) && result.loss === 'softmax');
  const intro = t.adversarial
    ? `The reference CNN's architecture, adversarially trained on Fashion-MNIST by \`advsieve train --adversarial\`:
a model that resists attacks within its training budget, at a price in clean accuracy. Serve it
beside or instead of the default model; the detectors read the activations of the layers listed
in \`metadata.json\`.`
    : variant
      ? `A variant of the reference model (${describeVariant(result.variant)}, loss \`${result.loss}\`), trained on
Fashion-MNIST by \`advsieve train\` for the causes-of-adversarial-examples study. It loads wherever the
default model does; the detectors read the activations of the layers listed in \`metadata.json\`.`
      : `A small CNN for 28×28 grey images, trained on Fashion-MNIST by \`advsieve train\`. It is the model
the service screens for when started on the bundled files; the detectors read the activations
of the layers listed in \`metadata.json\`.`;
  const kind = t.adversarial ? 'adversarially trained' : variant ? 'variant' : 'reference';
  return `# ${id} — advsieve's ${kind} model

${intro}

## Architecture (serving graph, \`model.json\`)
| layer | output | notes |
| --- | --- | --- |
${architectureRows(result, t).join('\n')}

${variantSection(result, t)}
Input: pixel values in [0, 1], shape [28, 28, 1]. Labels: ${FASHION_LABELS.join(', ')}.

## Data
Fashion-MNIST (Xiao, Rasul & Vollgraf 2017), official split: ${t.trainImages} training images
(Debian package \`dataset-fashion-mnist\`; ${t.samplesPerEpoch} per epoch, the last partial batch dropped),
${t.testImages} test images for the accuracy below only.

## Result
- **Test accuracy: ${(t.testAccuracy * 100).toFixed(2)} %** (${t.testImages} official test images)
- Training wall time: ${t.wallSeconds} s on ${t.workers} worker thread(s), backend \`${t.backend}\`,
  ${t.samplesPerSec} samples/s; ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}); ${t.date}
- Adam, ${t.lrSchedule === 'cosine' ? `peak learning rate ${t.learningRate}, ${t.warmupEpochs} epoch(s) of warm-up then cosine decay` : `learning rate ${t.learningRate} × ${t.lrDecay} per epoch`},
  dropout ${t.dropout}, ${t.augment ? 'random horizontal flips and shifts of up to 2 pixels' : 'no augmentation'}, global batch ${t.batchSize}, seed ${t.seed}
- SHA-256 of model.json + weights.bin: \`${sha}\`
${weightAverageLine(t)}
${adversarialSection(t)}
Command:
\`\`\`
${t.command}
\`\`\`

| epoch | train loss | train accuracy (dropout on) | learning rate at the end | seconds |
| --- | --- | --- | --- | --- |
${rows.join('\n')}
`;
}
