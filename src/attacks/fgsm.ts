/**
 * Fast gradient sign method: Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial
 * Examples", ICLR 2015. One L∞ sign-gradient step of size ε from the clean image — PGD's step
 * without the random start (as Foolbox defines it); options.steps and options.stepSize do not apply.
 */
import * as tf from '@tensorflow/tfjs';
import { Attack, AttackName, AttackOptions, AttackTarget } from './attack';
import { linfSignGradient } from './pgd';

export class FastGradientSignMethod implements Attack {
  readonly name: AttackName = 'fgsm';

  run(target: AttackTarget, x: tf.Tensor4D, labels: Int32Array, options: AttackOptions): Promise<tf.Tensor4D> {
    return linfSignGradient(target, x, labels, options, { steps: 1, stepSize: options.epsilon, randomStart: false });
  }
}
