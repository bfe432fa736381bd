/**
 * A loaded model ready for inference: one forward pass returns class probabilities, logits and the
 * activations of the named layers (the activation-distance detector's input), and the engine can
 * differentiate the loss with respect to the input (attacks, Grad-CAM).
 */
import * as tf from '@tensorflow/tfjs';
import { loadModel, ModelMetadata, StoredModel } from './modelStore';
import { LowPassKind, spectralExtras } from './spectra';
import { unfuseConvolutionsUnderTape } from './unfusedUnderTape';

/**
 * What a batch computes besides the forward pass, for the detectors and the defense: the share of
 * spectral energy above each cut-off (per channel), and the probabilities of the low-passed image.
 * Computed where the batch runs, so that screening costs one trip to a worker.
 */
export interface BatchExtras {
  readonly hfCutoffs?: readonly number[];
  readonly lowPass?: { readonly radius: number; readonly kind: LowPassKind };
  /** Also return the low-passed pixels (the defense's "purified" image). */
  readonly lowPassPixels?: boolean;
}

/** One image's outputs, as plain arrays (they cross thread boundaries). */
export interface ImageOutput {
  readonly probs: Float32Array;
  readonly logits: Float32Array;
  /** Per activation layer: the flattened activation, conv layers pooled per channel (mean, std). */
  readonly activations: Readonly<Record<string, Float32Array>>;
  /** With BatchExtras.hfCutoffs: cut-offs × channels, row-major. */
  readonly hfShare?: Float32Array;
  /** With BatchExtras.lowPass: probabilities of the low-passed image. */
  readonly lowPassProbs?: Float32Array;
  /** With BatchExtras.lowPassPixels: the low-passed image, H×W×C. */
  readonly lowPassPixels?: Float32Array;
}

export interface BatchOutput {
  readonly count: number;
  readonly numClasses: number;
  /** count × numClasses, row-major. */
  readonly probs: Float32Array;
  readonly logits: Float32Array;
  /** Per layer: count × width, row-major (conv layers pooled per channel: means, then stds). */
  readonly activations: Readonly<Record<string, { width: number; values: Float32Array }>>;
  /** count × (cut-offs × channels). */
  readonly hfShare?: Float32Array;
  /** count × numClasses. */
  readonly lowPassProbs?: Float32Array;
  /** count × H × W × C. */
  readonly lowPassPixels?: Float32Array;
}

/**
 * A conv activation [N, H, W, C] pooled per channel into [N, 2C]: the spatial mean and standard
 * deviation of each channel. The mean alone (Lee et al. 2018) misses how unevenly a channel fires,
 * which is where a speckled perturbation shows.
 */
export function poolPerChannel(a: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => {
    const mean = tf.mean(a, [1, 2], true);
    const std = tf.sqrt(tf.add(tf.mean(tf.square(tf.sub(a, mean)), [1, 2]), 1e-8));
    return tf.concat([tf.reshape(mean, [a.shape[0], a.shape[3]]), std], 1) as tf.Tensor2D;
  });
}

/**
 * The logits: the named layer's output — or, when that layer is a Dense with a softmax inside (how
 * Keras classifiers usually end: `Dense(n, activation='softmax')`), the same Dense without its
 * activation, with the same weights, on the same input: the scores before the softmax, which the
 * attacks and the promotion/suppression analysis need and the layer itself never outputs.
 */
function logitsOutput(m: tf.LayersModel, name: string): tf.SymbolicTensor {
  const layer = m.getLayer(name);
  const config = layer.getConfig();
  if (config.activation !== 'softmax') return layer.output as tf.SymbolicTensor;
  if (layer.getClassName() !== 'Dense') {
    throw new Error(
      `logits layer '${name}' is a ${layer.getClassName()} with a softmax inside: only a Dense's logits can be split off; name the layer before the softmax`,
    );
  }
  const twin = tf.layers.dense({
    units: config.units as number,
    useBias: config.useBias as boolean,
    activation: 'linear',
    name: unusedName(m, `${name}_logits`),
    weights: layer.getWeights(),
  });
  return twin.apply(layer.input as tf.SymbolicTensor) as tf.SymbolicTensor;
}

function unusedName(m: tf.LayersModel, base: string): string {
  const taken = new Set(m.layers.map((l) => l.name));
  let name = base;
  for (let k = 2; taken.has(name); k++) name = `${base}_${k}`;
  return name;
}

export class InferenceModel {
  /** Outputs: the distinct layers among [probs, logits, ...activation layers]. */
  private readonly graph: tf.LayersModel;
  /** Index in the graph's outputs of each layer name (the probabilities' under probsKey). */
  private readonly outputIndex: ReadonlyMap<string, number>;
  private readonly probsKey: string;
  /** Input → logits only: attacks differentiate this one. */
  private readonly logitsGraph: tf.LayersModel;

  private constructor(
    readonly stored: StoredModel,
    readonly activationLayers: readonly string[],
  ) {
    const m = stored.model;
    const md = stored.metadata;
    const logits = logitsOutput(m, md.logitsLayer);
    // A Keras-style model's softmax Dense is both outputLayer and logitsLayer: its probabilities get a key of their own.
    this.probsKey = md.outputLayer === md.logitsLayer ? `${md.outputLayer}\u0000probabilities` : md.outputLayer;
    const outputs = new Map<string, tf.SymbolicTensor>([
      [this.probsKey, m.getLayer(md.outputLayer).output as tf.SymbolicTensor],
    ]);
    for (const name of [md.logitsLayer, ...activationLayers]) {
      if (!outputs.has(name))
        outputs.set(name, name === md.logitsLayer ? logits : (m.getLayer(name).output as tf.SymbolicTensor));
    }
    this.outputIndex = new Map([...outputs.keys()].map((n, i) => [n, i]));
    this.graph = tf.model({ inputs: m.inputs, outputs: [...outputs.values()] });
    this.logitsGraph = tf.model({ inputs: m.inputs, outputs: logits });
    // Input gradients need no filter gradients: see unfusedUnderTape.ts.
    unfuseConvolutionsUnderTape(m);
  }

  static async load(dir: string, activationLayers?: readonly string[]): Promise<InferenceModel> {
    const stored = await loadModel(dir);
    return new InferenceModel(stored, activationLayers ?? stored.metadata.activationLayers);
  }

  get metadata(): ModelMetadata {
    return this.stored.metadata;
  }

  get inputShape(): readonly [number, number, number] {
    return this.stored.metadata.inputShape;
  }

  get imageSize(): number {
    const [h, w, c] = this.inputShape;
    return h * w * c;
  }

  /** Tensors out: the caller owns them. Conv activations are pooled per channel unless `pool` is false. */
  forward(
    x: tf.Tensor4D,
    pool = true,
  ): { probs: tf.Tensor2D; logits: tf.Tensor2D; activations: Record<string, tf.Tensor> } {
    return tf.tidy(() => {
      const outs = this.graph.predict(x) as tf.Tensor[];
      const get = (name: string) => outs[this.outputIndex.get(name)!];
      const probs = get(this.probsKey);
      const logits = get(this.metadata.logitsLayer);
      const activations: Record<string, tf.Tensor> = {};
      this.activationLayers.forEach((name) => {
        const a = get(name);
        activations[name] =
          pool && a.rank === 4 ? poolPerChannel(a as tf.Tensor4D) : a.rank > 2 ? tf.reshape(a, [a.shape[0], -1]) : a;
      });
      return { probs: probs as tf.Tensor2D, logits: logits as tf.Tensor2D, activations };
    });
  }

  /**
   * forward() on the differentiable path (Layers' apply rather than predict): adaptive attacks
   * differentiate the detectors, which read the activations.
   */
  forwardDifferentiable(x: tf.Tensor4D): { logits: tf.Tensor2D; activations: Record<string, tf.Tensor2D> } {
    const outs = this.graph.apply(x) as tf.Tensor[];
    const get = (name: string) => outs[this.outputIndex.get(name)!];
    const activations: Record<string, tf.Tensor2D> = {};
    for (const name of this.activationLayers) {
      const a = get(name);
      activations[name] = (
        a.rank === 4 ? poolPerChannel(a as tf.Tensor4D) : a.rank > 2 ? tf.reshape(a, [a.shape[0], -1]) : a
      ) as tf.Tensor2D;
    }
    return { logits: get(this.metadata.logitsLayer) as tf.Tensor2D, activations };
  }

  /** Logits only, differentiable (the path attacks and gradients take). */
  logits(x: tf.Tensor4D): tf.Tensor2D {
    return this.logitsGraph.apply(x) as tf.Tensor2D;
  }

  /** Gradient of the cross-entropy of `labels` with respect to the input: [N, H, W, C]. */
  inputGradient(x: tf.Tensor4D, labels: Int32Array): tf.Tensor4D {
    return tf.tidy(() => {
      const target = tf.oneHot(tf.tensor1d(labels, 'int32'), this.metadata.labels.length);
      const grad = tf.grad((input: tf.Tensor) =>
        tf.losses.softmaxCrossEntropy(target, this.logits(input as tf.Tensor4D)),
      );
      return grad(x) as tf.Tensor4D;
    });
  }

  /**
   * Runs a batch given as pixels (count × H × W × C, values in [0, 1]) and returns plain arrays.
   * Reads are asynchronous: the WebGPU backend cannot read synchronously in Node.
   */
  async runBatch(pixels: Float32Array, count: number, extras: BatchExtras = {}): Promise<BatchOutput> {
    const [h, w, c] = this.inputShape;
    if (pixels.length !== count * h * w * c) {
      throw new Error(`expected ${count}×${h}×${w}×${c} = ${count * h * w * c} pixel values, got ${pixels.length}`);
    }
    const out = tf.tidy(() => {
      const x = tf.tensor4d(pixels, [count, h, w, c]);
      const { hfShare, filtered } = spectralExtras(x, extras.hfCutoffs ?? [], extras.lowPass);
      return {
        ...this.forward(x),
        hfShare,
        lowPassProbs: filtered ? this.probabilities(filtered) : undefined,
        lowPassPixels: extras.lowPassPixels ? filtered : undefined,
      };
    });
    const names = Object.keys(out.activations);
    const optional = [out.hfShare, out.lowPassProbs, out.lowPassPixels];
    const tensors = [out.probs, out.logits, ...names.map((n) => out.activations[n])];
    try {
      // Read outside tidy: tidy walks returned TypedArrays element by element.
      const read = (await Promise.all([...tensors, ...optional].map((t) => t?.data()))) as Array<
        Float32Array | undefined
      >;
      const [probs, logits, ...acts] = read.slice(0, tensors.length) as Float32Array[];
      const [hfShare, lowPassProbs, lowPassPixels] = read.slice(tensors.length);
      const activations: Record<string, { width: number; values: Float32Array }> = {};
      names.forEach((name, i) => {
        activations[name] = { width: out.activations[name].shape[1] as number, values: acts[i] };
      });
      return {
        count,
        numClasses: out.probs.shape[1],
        probs,
        logits,
        activations,
        hfShare,
        lowPassProbs,
        lowPassPixels,
      };
    } finally {
      tf.dispose([...tensors, ...(optional.filter((t) => t !== undefined) as tf.Tensor[])]);
    }
  }

  /** Class probabilities only (the second pass of the low-pass defense). */
  probabilities(x: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => tf.softmax(this.logits(x)));
  }

  dispose(): void {
    this.stored.model.dispose();
  }
}

/** Splits a batch output into per-image outputs (views, no copies). */
export function splitBatch(out: BatchOutput): ImageOutput[] {
  const k = out.numClasses;
  const slice = (a: Float32Array | undefined, i: number) => {
    if (!a) return undefined;
    const width = a.length / out.count;
    return a.subarray(i * width, (i + 1) * width);
  };
  return Array.from({ length: out.count }, (_, i) => {
    const activations: Record<string, Float32Array> = {};
    for (const [name, a] of Object.entries(out.activations))
      activations[name] = a.values.subarray(i * a.width, (i + 1) * a.width);
    return {
      probs: out.probs.subarray(i * k, (i + 1) * k),
      logits: out.logits.subarray(i * k, (i + 1) * k),
      activations,
      hfShare: slice(out.hfShare, i),
      lowPassProbs: slice(out.lowPassProbs, i),
      lowPassPixels: slice(out.lowPassPixels, i),
    };
  });
}
