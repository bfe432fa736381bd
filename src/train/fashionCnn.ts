/**
 * The reference model: a 2-convolution CNN for 28×28 grey images (Fashion-MNIST).
 *
 *   conv1 3×3×32 relu → pool1 2×2 → conv2 3×3×64 + batch norm → relu → pool2 2×2
 *   → flatten → dropout → fc1 128 relu → dropout → logits 10 → probs (softmax)
 *
 * Batch norm sits on conv2 only: on conv1 it cost a third of a training step (its statistics and
 * gradients run over the largest activation, 28×28×32) for no accuracy we could measure in short
 * runs. For serving, batch norm is folded into conv2's kernel and bias and dropout is dropped, so
 * the served graph is convolutions, pools and dense layers only: their unfused gradients are what
 * attacks and detectors differentiate, and nothing in it behaves differently in training mode.
 * Layer names are the contract with the detectors (activation layers) and the model card.
 */
import * as tf from '@tensorflow/tfjs';

export const INPUT_SHAPE = [28, 28, 1] as const;
export const NUM_CLASSES = 10;
/** Layers whose activations the engine returns by default (the detectors' layers). */
export const ACTIVATION_LAYERS = ['conv1', 'conv2', 'fc1', 'logits'] as const;

export interface FashionCnnOptions {
  readonly seed: number;
  readonly conv1Filters?: number;
  readonly conv2Filters?: number;
  readonly hiddenUnits?: number;
  readonly dropout?: number;
}

function init(seed: number, offset: number) {
  return tf.initializers.heNormal({ seed: seed * 31 + offset });
}

/** The training graph, with batch norm and dropout. */
export function buildTrainingModel(opts: FashionCnnOptions): tf.Sequential {
  const { seed, conv1Filters = 32, conv2Filters = 64, hiddenUnits = 128, dropout = 0.3 } = opts;
  const m = tf.sequential({ name: 'fashion-cnn-train' });
  m.add(
    tf.layers.conv2d({
      name: 'conv1',
      inputShape: [...INPUT_SHAPE],
      filters: conv1Filters,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
      kernelInitializer: init(seed, 1),
    }),
  );
  m.add(tf.layers.maxPooling2d({ name: 'pool1', poolSize: 2 }));
  m.add(
    tf.layers.conv2d({
      name: 'conv2',
      filters: conv2Filters,
      kernelSize: 3,
      padding: 'same',
      useBias: false,
      kernelInitializer: init(seed, 2),
    }),
  );
  m.add(tf.layers.batchNormalization({ name: 'bn2' }));
  m.add(tf.layers.activation({ name: 'relu2', activation: 'relu' }));
  m.add(tf.layers.maxPooling2d({ name: 'pool2', poolSize: 2 }));
  m.add(tf.layers.flatten({ name: 'flatten' }));
  m.add(tf.layers.dropout({ name: 'drop1', rate: dropout }));
  m.add(tf.layers.dense({ name: 'fc1', units: hiddenUnits, activation: 'relu', kernelInitializer: init(seed, 4) }));
  m.add(tf.layers.dropout({ name: 'drop2', rate: dropout }));
  m.add(
    tf.layers.dense({
      name: 'logits',
      units: NUM_CLASSES,
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 31 + 6 }),
    }),
  );
  return m;
}

/** The serving graph: batch norm folded into conv2, no dropout, a softmax `probs` head. */
export function buildServingModel(trained: tf.LayersModel): tf.Sequential {
  const get = (name: string) => trained.getLayer(name);
  const conv1 = get('conv1');
  const conv2 = get('conv2');
  const bn = get('bn2');
  const fc1 = get('fc1');
  const logits = get('logits');
  const conv1Filters = conv1.getWeights()[0].shape[3] as number;
  const conv2Filters = conv2.getWeights()[0].shape[3] as number;
  const hiddenUnits = fc1.getWeights()[0].shape[1] as number;

  const m = tf.sequential({ name: 'fashion-cnn' });
  m.add(
    tf.layers.conv2d({
      name: 'conv1',
      inputShape: [...INPUT_SHAPE],
      filters: conv1Filters,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
    }),
  );
  m.add(tf.layers.maxPooling2d({ name: 'pool1', poolSize: 2 }));
  m.add(tf.layers.conv2d({ name: 'conv2', filters: conv2Filters, kernelSize: 3, padding: 'same', activation: 'relu' }));
  m.add(tf.layers.maxPooling2d({ name: 'pool2', poolSize: 2 }));
  m.add(tf.layers.flatten({ name: 'flatten' }));
  m.add(tf.layers.dense({ name: 'fc1', units: hiddenUnits, activation: 'relu' }));
  m.add(tf.layers.dense({ name: 'logits', units: NUM_CLASSES }));
  m.add(tf.layers.activation({ name: 'probs', activation: 'softmax' }));

  m.getLayer('conv1').setWeights(conv1.getWeights());
  m.getLayer('fc1').setWeights(fc1.getWeights());
  m.getLayer('logits').setWeights(logits.getWeights());
  tf.tidy(() => {
    // y = γ (conv(x) − μ) / √(σ² + ε) + β  ⇒  kernel·s, bias β − μ·s with s = γ / √(σ² + ε)
    const [gamma, beta, movingMean, movingVar] = bn.getWeights();
    const eps = (bn.getConfig() as { epsilon: number }).epsilon;
    const scale = tf.div(gamma, tf.sqrt(tf.add(movingVar, eps)));
    const kernel = tf.mul(conv2.getWeights()[0], scale);
    const bias = tf.sub(beta, tf.mul(movingMean, scale));
    m.getLayer('conv2').setWeights([kernel, bias]);
  });
  return m;
}
