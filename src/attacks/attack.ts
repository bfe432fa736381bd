/**
 * The attack interface: hyper-parameters in the options, per-call data in the call (as Foolbox).
 * Attacks run in-process on tensors, against an AttackTarget that gives differentiable logits and,
 * for adaptive attacks, a differentiable penalty that the attacker also minimises (for instance the
 * detectors' scores above their thresholds, Carlini & Wagner 2017; Athalye et al. 2018).
 */
import * as tf from '@tensorflow/tfjs';

export interface AttackTarget {
  /** Differentiable logits of a batch x [N, H, W, C] with values in [0, 1]. */
  logits(x: tf.Tensor4D): tf.Tensor2D;
  /**
   * Optional differentiable per-image penalty [N] the attacker minimises as well (adaptive attacks).
   * Gradient attacks add `penaltyWeight × penalty` to their loss; the Square attack adds it to the margin.
   */
  penalty?(x: tf.Tensor4D): tf.Tensor1D;
  /**
   * Optional differentiable features of a batch, by layer, [N, D] each (the activations the detectors
   * read): what a feature-matching attack pulls towards a guide image's.
   */
  features?(x: tf.Tensor4D): Record<string, tf.Tensor2D>;
}

export interface AttackOptions {
  /** Perturbation budget: L∞ radius (FGSM, PGD, Square) or, for CW-L2, an upper bound on the L2 norm (Infinity: none). */
  readonly epsilon: number;
  /** Targeted attack: one target class per image; untargeted when absent. */
  readonly targets?: Int32Array;
  /** Iterations (PGD, CW) or queries (Square). */
  readonly steps?: number;
  /** Step size (PGD: L∞ step; CW: Adam learning rate). */
  readonly stepSize?: number;
  /** Seed of random starts and random search, for reproducible runs. */
  readonly seed?: number;
  /** Weight of AttackTarget.penalty in the loss; default 1. */
  readonly penaltyWeight?: number;
  /** Images attacked at once (default 64): memory and speed only, the results do not depend on it. */
  readonly batchSize?: number;
  /** CW and margin losses: κ, the logit margin a success must exceed (default 0: stop at the boundary). */
  readonly confidence?: number;
  /** Feature matching: one guide image per attacked image (N × H × W × C values in [0, 1]). */
  readonly guides?: Float32Array;
  /** Told the batch's mean loss after each step (restart r's step s is step r · steps + s): convergence plots. */
  readonly trace?: (step: number, meanLoss: number, images: number) => void;
}

export interface Attack {
  readonly name: AttackName;
  /**
   * Adversarial versions of images x [N, H, W, C] in [0, 1] with true labels `labels`; returns a new
   * [N, H, W, C] tensor in [0, 1] (the caller owns it; x is not disposed).
   */
  run(target: AttackTarget, x: tf.Tensor4D, labels: Int32Array, options: AttackOptions): Promise<tf.Tensor4D>;
}

export type AttackName = 'fgsm' | 'pgd' | 'cw' | 'square';
