/**
 * A loaded model ready for inference: one forward pass returns class probabilities, logits and the
 * activations of the named layers (the activation-distance detector's input), and the engine can
 * differentiate the loss with respect to the input (attacks, Grad-CAM).
 */
import * as tf from '@tensorflow/tfjs';
import { graphNetwork } from './graphNetwork';
import { layersNetwork } from './layersNetwork';
import { loadModel, ModelMetadata, StoredModel } from './modelStore';
import { Network, NetworkOutputs } from './network';
import { applyPreprocessing } from './preprocessing';
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
  /** With BatchExtras.hfCutoffs: cut-offs × sieve channels (RGB: R, G, B, luminance), row-major. */
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

/** One activation as the detectors read it: conv outputs pooled per channel (unless `pool` is false), others flattened. */
function flatActivation(a: tf.Tensor, pool: boolean): tf.Tensor {
  return pool && a.rank === 4 ? poolPerChannel(a as tf.Tensor4D) : a.rank > 2 ? tf.reshape(a, [a.shape[0], -1]) : a;
}

export class InferenceModel {
  private readonly network: Network;

  private constructor(
    readonly stored: StoredModel,
    readonly activationLayers: readonly string[],
  ) {
    const m = stored.model;
    this.network =
      m instanceof tf.GraphModel
        ? graphNetwork(m, stored.metadata, activationLayers)
        : layersNetwork(m, stored.metadata, activationLayers);
    // Input gradients need no filter gradients: see unfusedUnderTape.ts.
    if (!(m instanceof tf.GraphModel)) unfuseConvolutionsUnderTape(m);
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

  /**
   * The network's outputs for pixels in [0, 1]: the metadata's preprocessing first, inside the
   * differentiable path, so that gradients are with respect to the pixels.
   */
  private run(x: tf.Tensor4D, differentiable: boolean): NetworkOutputs {
    return this.network.run(applyPreprocessing(x, this.metadata.preprocessing), differentiable);
  }

  /** Tensors out: the caller owns them. Conv activations are pooled per channel unless `pool` is false. */
  forward(
    x: tf.Tensor4D,
    pool = true,
  ): { probs: tf.Tensor2D; logits: tf.Tensor2D; activations: Record<string, tf.Tensor> } {
    return tf.tidy(() => {
      const { probs, logits, activations: outs } = this.run(x, false);
      const activations: Record<string, tf.Tensor> = {};
      this.activationLayers.forEach((name, i) => (activations[name] = flatActivation(outs[i], pool)));
      return { probs: probs ?? this.probabilitiesOf(logits), logits, activations };
    });
  }

  /**
   * forward() on the differentiable path (Layers' apply rather than predict): adaptive attacks
   * differentiate the detectors, which read the activations.
   */
  forwardDifferentiable(x: tf.Tensor4D): { logits: tf.Tensor2D; activations: Record<string, tf.Tensor2D> } {
    const { logits, activations: outs } = this.run(x, true);
    const activations: Record<string, tf.Tensor2D> = {};
    this.activationLayers.forEach((name, i) => (activations[name] = flatActivation(outs[i], true) as tf.Tensor2D));
    return { logits, activations };
  }

  /** Logits only, differentiable (the path attacks and gradients take). */
  logits(x: tf.Tensor4D): tf.Tensor2D {
    return this.network.logits(applyPreprocessing(x, this.metadata.preprocessing));
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
   * Grad-CAM (Selvaraju et al. 2017) at `layer`, one map per image for the class asked of it: the
   * layer's channels weighted by the spatial mean of the class logit's gradient with respect to
   * them, summed, rectified, and scaled so that each map's maximum is 1 (all zero: nothing in the
   * image raises that class at this layer). Where the network ends in global average pooling and
   * a dense layer, this is CAM (Zhou et al. 2016). [N, h, w] at the layer's resolution.
   */
  gradCam(x: tf.Tensor4D, classes: Int32Array, layer: string): tf.Tensor3D {
    return tf.tidy(() => {
      const { head, tail } = this.network.split(layer);
      const a = head(applyPreprocessing(x, this.metadata.preprocessing));
      if (a.rank !== 4)
        throw new Error(`Grad-CAM needs a layer with a spatial output; '${layer}' gives [${a.shape.join(', ')}]`);
      const target = tf.oneHot(tf.tensor1d(classes, 'int32'), this.metadata.labels.length);
      const grads = tf.grad((act: tf.Tensor) => tf.sum(tf.mul(tail(act), target)))(a);
      const cam = tf.relu(tf.sum(tf.mul(a, tf.mean(grads, [1, 2], true)), 3));
      return tf.div(cam, tf.maximum(tf.max(cam, [1, 2], true), 1e-12)) as tf.Tensor3D;
    });
  }

  /** The layer Grad-CAM reads unless asked for another: the deepest activation layer with a spatial output. */
  get camLayer(): string | undefined {
    return this.spatialLayers[this.spatialLayers.length - 1];
  }

  /** The activation layers with a spatial output (conv layers: the detectors read them pooled per channel). */
  get spatialLayers(): readonly string[] {
    if (this.spatialLayerNames === null) {
      const [h, w, c] = this.inputShape;
      const ranks = tf.tidy(() => this.run(tf.zeros([1, h, w, c]), false).activations.map((t) => t.rank));
      this.spatialLayerNames = this.activationLayers.filter((_, i) => ranks[i] === 4);
    }
    return this.spatialLayerNames;
  }

  private spatialLayerNames: readonly string[] | null = null;

  /** gradCam on pixels, read out: the maps row-major [count × height × width]. */
  async explain(
    pixels: Float32Array,
    count: number,
    classes: Int32Array,
    layer = this.camLayer,
  ): Promise<{ layer: string; height: number; width: number; maps: Float32Array }> {
    if (layer === undefined)
      throw new Error(`model ${this.metadata.id} has no activation layer with a spatial output for Grad-CAM`);
    const [h, w, c] = this.inputShape;
    const maps = tf.tidy(() => this.gradCam(tf.tensor4d(pixels, [count, h, w, c]), classes, layer));
    try {
      return { layer, height: maps.shape[1], width: maps.shape[2], maps: (await maps.data()) as Float32Array };
    } finally {
      maps.dispose();
    }
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
    return tf.tidy(() => this.probabilitiesOf(this.logits(x)));
  }

  /**
   * Probabilities from logits as the model defines them (metadata `probabilities`): a softmax, or
   * a one-vs-rest model's per-class sigmoid, so that every probability the engine and the
   * detectors compare (low-pass, squeezed, differentiable features) is of one kind.
   */
  probabilitiesOf(logits: tf.Tensor2D): tf.Tensor2D {
    return this.metadata.probabilities === 'sigmoid' ? tf.sigmoid(logits) : tf.softmax(logits);
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
