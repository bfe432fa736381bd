/**
 * The layer classes advsieve's own models use beyond tfjs-layers' built-ins (the causes-study
 * variants of `advsieve train`). A saved model names them by class name in model.json; tfjs finds
 * the class only if it was registered in the thread that loads the model, so modelStore registers
 * them, explicitly, before every load (main thread, inference workers and the server alike).
 */
import * as tf from '@tensorflow/tfjs';
import { L2NormalizedDense } from './l2NormalizedDense';
import { PnnHead } from './pnnHead';

export const CUSTOM_LAYERS = [L2NormalizedDense, PnnHead] as const;

let registered = false;

/** Registers the custom layer classes with tfjs' serialization (once per thread; later calls do nothing). */
export function registerCustomLayers(): void {
  if (registered) return;
  for (const cls of CUSTOM_LAYERS) tf.serialization.registerClass(cls);
  registered = true;
}
