/**
 * The reference model: a 2-convolution CNN for 28×28 grey images (Fashion-MNIST), and its variants
 * for the causes study (src/train/modelVariant.ts, docs/variants.md): an MLP body instead of the
 * convolutions, and L2-normalised or PNN heads in place of the dense logits layer.
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
import { L2NormalizedDense } from '../engine/layers/l2NormalizedDense';
import { PnnHead } from '../engine/layers/pnnHead';
import type { ProbabilityKind } from '../engine/modelStore';
import { ModelVariant, ModelVariantOptions, resolveVariant } from './modelVariant';

export const INPUT_SHAPE = [28, 28, 1] as const;
export const NUM_CLASSES = 10;
/** Layers whose activations the engine returns by default (the detectors' layers); the MLP's: activationLayersOf. */
export const ACTIVATION_LAYERS = ['conv1', 'conv2', 'fc1', 'logits'] as const;

/**
 * The hidden layers' activation. 'swish' (SiLU, x·sigmoid(x)) is smooth: Xie et al. 2020 ("Smooth
 * Adversarial Training") found ReLU's gradient, which jumps at 0, weakens both the inner attack of
 * adversarial training and the weights' step, and smooth activations bought robustness at no cost
 * in parameters (with PGD training, on ImageNet). Measured here with FGSM-RS training it did the
 * opposite: 61.9 % under PGD-40 against ReLU's 73.6 % (docs/figures.md, "a smooth activation"),
 * and its attacks cost twice as much on wasm. So ReLU stays the default; swish is there to measure.
 */
export type HiddenActivation = 'relu' | 'swish';
export const HIDDEN_ACTIVATIONS: readonly HiddenActivation[] = ['relu', 'swish'];

export interface FashionCnnOptions extends ModelVariantOptions {
  readonly seed: number;
  /** The hidden layers' activation: the CNN's conv1, conv2 and fc1, the MLP's fc1 and fc2 (default 'relu'). */
  readonly activation?: HiddenActivation;
  readonly conv1Filters?: number;
  readonly conv2Filters?: number;
  /** Width of the penultimate features: the CNN's fc1, the MLP's fc2 (default 128). */
  readonly hiddenUnits?: number;
  /** The MLP's fc1 width (default 256). */
  readonly mlpUnits?: number;
  readonly dropout?: number;
  /** Classes of the logits (default 10; the reference datasets of the causes study may have others). */
  readonly classes?: number;
  /** [height, width] of the grey input images (default 28×28; the trainer sets it from its data). */
  readonly inputSize?: readonly [number, number];
}

/** The model's input shape [height, width, 1]. */
export function inputShapeOf(opts: Pick<FashionCnnOptions, 'inputSize'>): [number, number, number] {
  const [h, w] = opts.inputSize ?? [INPUT_SHAPE[0], INPUT_SHAPE[1]];
  return [h, w, 1];
}

export function classesOf(opts: Pick<FashionCnnOptions, 'classes'>): number {
  const k = opts.classes ?? NUM_CLASSES;
  if (!(Number.isInteger(k) && k >= 2)) throw new RangeError(`classes: expected an integer ≥ 2, got ${k}`);
  return k;
}

/** The hidden layers' activation (CNN or MLP); throws a RangeError on an unknown one. */
export function activationOf(opts: Pick<FashionCnnOptions, 'activation'>): HiddenActivation {
  const a = opts.activation ?? 'relu';
  if (!HIDDEN_ACTIVATIONS.includes(a))
    throw new RangeError(`activation: expected one of ${HIDDEN_ACTIVATIONS.join(', ')}, got '${String(a)}'`);
  return a;
}

function init(seed: number, offset: number) {
  return tf.initializers.heNormal({ seed: seed * 31 + offset });
}

/**
 * The layer named 'logits': a dense layer, an L2-normalised one, or a PNN head (the same class and
 * configuration in the training and the serving graph, so its weights copy over as they are).
 */
function headLayer(v: ModelVariant, seed: number, classes: number): tf.layers.Layer {
  if (v.head === 'pnn')
    return new PnnHead({
      name: 'logits',
      units: classes,
      prototypesPerClass: v.prototypesPerClass,
      normalizeFeatures: v.l2norm === 'features',
      seed: seed * 31 + 6,
    });
  if (v.l2norm !== 'none')
    return new L2NormalizedDense({
      name: 'logits',
      units: classes,
      normalize: v.l2norm,
      scale: v.l2Scale,
      seed: seed * 31 + 6,
    });
  return tf.layers.dense({
    name: 'logits',
    units: classes,
    kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 31 + 6 }),
  });
}

/** The MLP body: flatten → fc1 → fc2 (ReLU or swish), with dropout after each dense layer in training. */
function addMlpBody(m: tf.Sequential, opts: FashionCnnOptions, training: boolean): void {
  const { seed, mlpUnits = 256, hiddenUnits = 128, dropout = 0.3 } = opts;
  const activation = activationOf(opts);
  m.add(tf.layers.flatten({ name: 'flatten', inputShape: inputShapeOf(opts) }));
  m.add(tf.layers.dense({ name: 'fc1', units: mlpUnits, activation, kernelInitializer: init(seed, 1) }));
  if (training) m.add(tf.layers.dropout({ name: 'drop1', rate: dropout }));
  m.add(tf.layers.dense({ name: 'fc2', units: hiddenUnits, activation, kernelInitializer: init(seed, 2) }));
  if (training) m.add(tf.layers.dropout({ name: 'drop2', rate: dropout }));
}

/** The training graph, with batch norm and dropout. */
export function buildTrainingModel(opts: FashionCnnOptions): tf.Sequential {
  const variant = resolveVariant(opts);
  if (variant.arch === 'mlp') {
    const m = tf.sequential({ name: 'fashion-mlp-train' });
    addMlpBody(m, opts, true);
    m.add(headLayer(variant, opts.seed, classesOf(opts)));
    return m;
  }
  const { seed, conv1Filters = 32, conv2Filters = 64, hiddenUnits = 128, dropout = 0.3 } = opts;
  const activation = activationOf(opts);
  const m = tf.sequential({ name: 'fashion-cnn-train' });
  m.add(
    tf.layers.conv2d({
      name: 'conv1',
      inputShape: inputShapeOf(opts),
      filters: conv1Filters,
      kernelSize: 3,
      padding: 'same',
      activation,
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
  m.add(tf.layers.activation({ name: 'act2', activation }));
  m.add(tf.layers.maxPooling2d({ name: 'pool2', poolSize: 2 }));
  m.add(tf.layers.flatten({ name: 'flatten' }));
  m.add(tf.layers.dropout({ name: 'drop1', rate: dropout }));
  m.add(tf.layers.dense({ name: 'fc1', units: hiddenUnits, activation, kernelInitializer: init(seed, 4) }));
  m.add(tf.layers.dropout({ name: 'drop2', rate: dropout }));
  m.add(headLayer(variant, seed, classesOf(opts)));
  return m;
}

/**
 * The serving graph: batch norm folded into conv2, no dropout, a `probs` head — softmax, or the
 * per-class sigmoid of a one-vs-rest model (`probabilities`). `opts` must be what `trained` was
 * built with.
 */
export function buildServingModel(
  trained: tf.LayersModel,
  opts: FashionCnnOptions = { seed: 0 },
  probabilities: ProbabilityKind = 'softmax',
): tf.Sequential {
  const variant = resolveVariant(opts);
  const probs = tf.layers.activation({ name: 'probs', activation: probabilities });
  const copy = (m: tf.Sequential, names: readonly string[]) => {
    for (const name of names) m.getLayer(name).setWeights(trained.getLayer(name).getWeights());
  };
  if (variant.arch === 'mlp') {
    const m = tf.sequential({ name: 'fashion-mlp' });
    const width = (name: string) => trained.getLayer(name).getWeights()[0].shape[1] as number;
    addMlpBody(m, { ...opts, mlpUnits: width('fc1'), hiddenUnits: width('fc2') }, false);
    m.add(headLayer(variant, opts.seed, classesOf(opts)));
    m.add(probs);
    copy(m, ['fc1', 'fc2', 'logits']);
    return m;
  }
  const get = (name: string) => trained.getLayer(name);
  const conv1 = get('conv1');
  const conv2 = get('conv2');
  const bn = get('bn2');
  const fc1 = get('fc1');
  const conv1Filters = conv1.getWeights()[0].shape[3] as number;
  const conv2Filters = conv2.getWeights()[0].shape[3] as number;
  const hiddenUnits = fc1.getWeights()[0].shape[1] as number;
  const activation = activationOf(opts);

  const m = tf.sequential({ name: 'fashion-cnn' });
  m.add(
    tf.layers.conv2d({
      name: 'conv1',
      inputShape: inputShapeOf(opts),
      filters: conv1Filters,
      kernelSize: 3,
      padding: 'same',
      activation,
    }),
  );
  m.add(tf.layers.maxPooling2d({ name: 'pool1', poolSize: 2 }));
  m.add(tf.layers.conv2d({ name: 'conv2', filters: conv2Filters, kernelSize: 3, padding: 'same', activation }));
  m.add(tf.layers.maxPooling2d({ name: 'pool2', poolSize: 2 }));
  m.add(tf.layers.flatten({ name: 'flatten' }));
  m.add(tf.layers.dense({ name: 'fc1', units: hiddenUnits, activation }));
  m.add(headLayer(variant, opts.seed, classesOf(opts)));
  m.add(probs);

  copy(m, ['conv1', 'fc1', 'logits']);
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
