/**
 * The reference model's variants, each the control of one cause in the causes-of-adversarial-
 * examples study (docs/variants.md): the architecture (the CNN, or an MLP: model linearity), L2
 * normalisation of the penultimate features and/or the class weights (linearity again, bounded
 * logits), the head (a dense layer, or a probabilistic neural network with a "none of the classes"
 * density: the geometry of the categories). The loss (softmax or one-vs-rest: the one-sum
 * constraint) is a training option (src/train/losses.ts), not the model's.
 */
import { L2_NORM_MODES, L2NormMode } from '../engine/layers/l2NormalizedDense';

export type Architecture = 'cnn' | 'mlp';
export const ARCHITECTURES: readonly Architecture[] = ['cnn', 'mlp'];
export type L2Norm = 'none' | L2NormMode;
export const L2_NORMS: readonly L2Norm[] = ['none', ...L2_NORM_MODES];
export type HeadKind = 'dense' | 'pnn';
export const HEADS: readonly HeadKind[] = ['dense', 'pnn'];

export const DEFAULT_L2_SCALE = 10;
export const DEFAULT_PROTOTYPES_PER_CLASS = 4;

export interface ModelVariantOptions {
  /** 'cnn' (default): the reference CNN; 'mlp': flatten → fc1 256 ReLU → fc2 128 ReLU → head. */
  readonly arch?: Architecture;
  /** L2 normalisation before/in the head (default 'none'); 'weights' and 'both' need the dense head. */
  readonly l2norm?: L2Norm;
  /** The fixed scale s of the normalised logits (default 10). */
  readonly l2Scale?: number;
  /** 'dense' (default) or 'pnn' (Gaussian kernels around learned class prototypes). */
  readonly head?: HeadKind;
  /** PNN kernels per class (default 4). */
  readonly prototypesPerClass?: number;
}

/** A variant with every default filled in. */
export interface ModelVariant {
  readonly arch: Architecture;
  readonly l2norm: L2Norm;
  readonly l2Scale: number;
  readonly head: HeadKind;
  readonly prototypesPerClass: number;
}

function oneOf<T extends string>(field: string, value: T, allowed: readonly T[]): T {
  if (!allowed.includes(value)) throw new RangeError(`${field}: expected one of ${allowed.join(', ')}, got '${value}'`);
  return value;
}

/** The variant with its defaults; throws a RangeError naming the bad field. */
export function resolveVariant(opts: ModelVariantOptions): ModelVariant {
  const v: ModelVariant = {
    arch: oneOf('arch', opts.arch ?? 'cnn', ARCHITECTURES),
    l2norm: oneOf('l2norm', opts.l2norm ?? 'none', L2_NORMS),
    l2Scale: opts.l2Scale ?? DEFAULT_L2_SCALE,
    head: oneOf('head', opts.head ?? 'dense', HEADS),
    prototypesPerClass: opts.prototypesPerClass ?? DEFAULT_PROTOTYPES_PER_CLASS,
  };
  if (!(v.l2Scale > 0 && Number.isFinite(v.l2Scale)))
    throw new RangeError(`l2Scale: expected a finite number > 0, got ${v.l2Scale}`);
  if (!(Number.isInteger(v.prototypesPerClass) && v.prototypesPerClass > 0))
    throw new RangeError(`prototypesPerClass: expected an integer > 0, got ${v.prototypesPerClass}`);
  if (v.head === 'pnn' && (v.l2norm === 'weights' || v.l2norm === 'both'))
    throw new RangeError(
      `l2norm '${v.l2norm}' normalises class weight vectors, which the PNN head has none of: use 'features' or 'none'`,
    );
  return v;
}

/** Layers whose activations the engine returns by default (the detectors' layers), input side first. */
export function activationLayersOf(v: Pick<ModelVariant, 'arch'>): string[] {
  return v.arch === 'mlp' ? ['fc1', 'fc2', 'logits'] : ['conv1', 'conv2', 'fc1', 'logits'];
}

/** Whether the variant is the default model (no variant record in its metadata). */
export function isDefaultVariant(v: ModelVariant): boolean {
  return v.arch === 'cnn' && v.l2norm === 'none' && v.head === 'dense';
}

/** One line for logs and the model card, e.g. "mlp, L2 both (s = 10), PNN head (4 prototypes/class)". */
export function describeVariant(v: ModelVariant): string {
  return [
    v.arch === 'mlp' ? 'MLP' : 'CNN',
    v.l2norm === 'none' ? undefined : `L2-normalised ${v.l2norm}${v.head === 'pnn' ? '' : ` (s = ${v.l2Scale})`}`,
    v.head === 'pnn' ? `PNN head (${v.prototypesPerClass} prototypes per class)` : 'dense head',
  ]
    .filter((s) => s !== undefined)
    .join(', ');
}
