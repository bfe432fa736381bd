/**
 * A tfjs graph model as a Network: one execute() for the probabilities, the logits and the
 * activations, all named by graph node. execute() runs tfjs ops, so tf.grad follows it like any
 * other function of its input (the engine keeps what the backward pass needs): the attacks'
 * gradients need nothing of their own here.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelMetadata } from './modelStore';
import { Network, outputList } from './network';

export function graphNetwork(m: tf.GraphModel, md: ModelMetadata, activationLayers: readonly string[]): Network {
  const names = [
    ...new Set([...(md.outputLayer === undefined ? [] : [md.outputLayer]), md.logitsLayer, ...activationLayers]),
  ];
  const index = new Map(names.map((n, i) => [n, i]));
  return {
    run(x) {
      const outs = outputList(m.execute(x, names));
      const get = (name: string) => outs[index.get(name)!];
      return {
        probs: md.outputLayer === undefined ? undefined : (get(md.outputLayer) as tf.Tensor2D),
        logits: get(md.logitsLayer) as tf.Tensor2D,
        activations: activationLayers.map(get),
      };
    },
    logits: (x) => m.execute(x, md.logitsLayer) as tf.Tensor2D,
    // A graph runs from any node fed to it: feeding the cut node's value runs only what follows it.
    split: (layer) => ({
      head: (x) => m.execute(x, layer) as tf.Tensor,
      tail: (a) => m.execute({ [layer]: a }, md.logitsLayer) as tf.Tensor2D,
    }),
  };
}
