/**
 * The model variants and data sets of the causes study, as data: each variant is the training
 * options that switch one cause on or off, each data set a geometry. Adding a variant is one entry.
 */
import type { ReferenceGeometry } from '../data/referenceDatasets';
import type { TrainOptions } from '../train/trainer';

/** What a variant changes in training; everything else comes from the study's settings. */
export type VariantTraining = Partial<Pick<TrainOptions, 'model' | 'adversarial' | 'loss'>>;

/** The paper's causes a variant switches (the claims it is evidence for). */
/** 'architecture': the MLP with a dense head, the reference MLP-PNN is read against (no claim of its own). */
export type Cause = 'baseline' | 'linearity' | 'one-sum' | 'architecture' | 'density' | 'adversarial-training';

export interface StudyVariant {
  readonly id: string;
  /** What it is, in words (the report's tables). */
  readonly title: string;
  readonly cause: Cause;
  readonly training: VariantTraining;
}

/** The baseline first: every comparison is against it. */
export const STUDY_VARIANTS: readonly StudyVariant[] = [
  { id: 'baseline', title: 'CNN, softmax cross-entropy', cause: 'baseline', training: {} },
  {
    id: 'l2-features',
    title: 'CNN, L2-normalised penultimate features (scale 10)',
    cause: 'linearity',
    training: { model: { l2norm: 'features' } },
  },
  {
    id: 'l2-weights',
    title: 'CNN, L2-normalised class weights (scale 10)',
    cause: 'linearity',
    training: { model: { l2norm: 'weights' } },
  },
  {
    id: 'l2-both',
    title: 'CNN, L2-normalised features and class weights (cosine logits, scale 10)',
    cause: 'linearity',
    training: { model: { l2norm: 'both' } },
  },
  {
    id: 'ovr',
    title: 'CNN, one-vs-rest sigmoid loss (no one-sum constraint)',
    cause: 'one-sum',
    training: { loss: 'ovr' },
  },
  {
    id: 'mlp',
    title: 'MLP (256-64), dense head, softmax',
    cause: 'architecture',
    training: { model: { arch: 'mlp' } },
  },
  {
    id: 'mlp-pnn',
    title: 'MLP (256-64), PNN head (Gaussian kernels around class prototypes, p(none))',
    cause: 'density',
    training: { model: { arch: 'mlp', head: 'pnn' } },
  },
  {
    id: 'fgsm-rs',
    title: 'CNN, adversarially trained (FGSM from a random start, ε 0.1)',
    cause: 'adversarial-training',
    training: { adversarial: { method: 'fgsm-rs', epsilon: 0.1 } },
  },
];

export interface StudyDataset {
  readonly id: string;
  readonly title: string;
  /** Fashion-MNIST (a training subset), or a reference geometry (src/data/referenceDatasets.ts). */
  readonly source: { readonly kind: 'fashion' } | { readonly kind: 'reference'; readonly geometry: ReferenceGeometry };
  /** Variants trained on it, by id ('*': all). */
  readonly variants: readonly string[] | '*';
}

/**
 * Fashion-MNIST gets every variant (the statistics switched on a real data set); the reference
 * geometries switch separation (well apart vs overlapping, at the same spread) and intrinsic
 * dimensionality (10 vs 100) on the baseline, and one geometry gets one variant of each cause, so
 * the statistical switches are measured at a fixed, known geometry. The separations are set against the
 * L∞ budgets the study attacks with: well apart, a class mean is ~0.1 in L∞ from the Bayes boundary
 * (the reference datasets' linfToBoundary), overlapping ~0.03.
 */
export const STUDY_DATASETS: readonly StudyDataset[] = [
  { id: 'fashion', title: 'Fashion-MNIST (training subset)', source: { kind: 'fashion' }, variants: '*' },
  {
    id: 'ref-apart-d10',
    title: 'reference: classes well apart, d = 10',
    source: { kind: 'reference', geometry: { classes: 10, dimension: 10, separation: 4, spread: 0.4 } },
    variants: ['baseline', 'l2-both', 'ovr', 'mlp', 'mlp-pnn', 'fgsm-rs'],
  },
  {
    id: 'ref-overlap-d10',
    title: 'reference: classes overlapping, d = 10',
    source: { kind: 'reference', geometry: { classes: 10, dimension: 10, separation: 1.2, spread: 0.4 } },
    variants: ['baseline'],
  },
  {
    id: 'ref-apart-d100',
    title: 'reference: classes well apart, d = 100',
    source: { kind: 'reference', geometry: { classes: 10, dimension: 100, separation: 4, spread: 0.4 } },
    variants: ['baseline'],
  },
  {
    id: 'ref-overlap-d100',
    title: 'reference: classes overlapping, d = 100',
    source: { kind: 'reference', geometry: { classes: 10, dimension: 100, separation: 1.2, spread: 0.4 } },
    variants: ['baseline'],
  },
];
