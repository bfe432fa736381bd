/**
 * What `advsieve import` needs to know of a loaded model, whichever its format
 * (src/models/inspectLayers.ts, src/models/inspectGraph.ts): its inputs, its final softmax, the
 * candidates for the activation rule, and the outputs of named layers (graph nodes) on an input.
 */
import * as tf from '@tensorflow/tfjs';
import type { BlockKind } from './activationRule';

export type FinalSoftmax =
  /** `output` gives the probabilities, `logits` the scores before them (the same Dense when it has a softmax inside). */
  | { readonly output: string; readonly logits: string }
  /** The model ends in a softmax the logits cannot be taken from: why. */
  | { readonly problem: string };

export interface ModelInspection {
  /** Each input's shape, batch first (null: any size); undefined when the rank is unknown. */
  readonly inputs: ReadonlyArray<ReadonlyArray<number | null> | undefined>;
  /** Set when the input is not a float tensor (a uint8 image input, say). */
  readonly inputDtypeProblem?: string;
  /** undefined: the model does not end in a softmax. */
  readonly softmax?: FinalSoftmax;
  /** Block outputs in depth order, shapes unknown until run. */
  readonly blocks: ReadonlyArray<{ readonly name: string; readonly kind: BlockKind }>;
  has(name: string): boolean;
  /** The penultimate features: the input of the logits layer (through dropout), if it has one. */
  penultimate(logits: string): string | undefined;
  /** The outputs of the named layers (nodes) on `x`, in order. */
  outputs(x: tf.Tensor4D, names: readonly string[]): tf.Tensor[];
}
