/**
 * A loaded model ready for inference: one forward pass returns class probabilities, logits and the
 * activations of the named layers (the activation-distance detector's input), and the engine can
 * differentiate the loss with respect to the input (attacks, Grad-CAM).
 */
import * as tf from '@tensorflow/tfjs';
import { loadModel, ModelMetadata, StoredModel } from './modelStore';

/** One image's outputs, as plain arrays (they cross thread boundaries). */
export interface ImageOutput {
  readonly probs: Float32Array;
  readonly logits: Float32Array;
  /** Per activation layer: the flattened activation, conv layers averaged per channel. */
  readonly activations: Readonly<Record<string, Float32Array>>;
}

export interface BatchOutput {
  readonly count: number;
  readonly numClasses: number;
  /** count × numClasses, row-major. */
  readonly probs: Float32Array;
  readonly logits: Float32Array;
  /** Per layer: count × width, row-major (conv layers pooled per channel). */
  readonly activations: Readonly<Record<string, { width: number; values: Float32Array }>>;
}

export class InferenceModel {
  /** Outputs: the distinct layers among [probs, logits, ...activation layers]. */
  private readonly graph: tf.LayersModel;
  /** Index in the graph's outputs of each name in `outputNames`. */
  private readonly outputIndex: ReadonlyMap<string, number>;
  /** Input → logits only: attacks differentiate this one. */
  private readonly logitsGraph: tf.LayersModel;

  private constructor(
    readonly stored: StoredModel,
    readonly activationLayers: readonly string[],
  ) {
    const m = stored.model;
    const md = stored.metadata;
    const names = [...new Set([md.outputLayer, md.logitsLayer, ...activationLayers])];
    this.outputIndex = new Map(names.map((n, i) => [n, i]));
    this.graph = tf.model({
      inputs: m.inputs,
      outputs: names.map((name) => m.getLayer(name).output as tf.SymbolicTensor),
    });
    this.logitsGraph = tf.model({ inputs: m.inputs, outputs: m.getLayer(md.logitsLayer).output as tf.SymbolicTensor });
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
      const probs = get(this.metadata.outputLayer);
      const logits = get(this.metadata.logitsLayer);
      const activations: Record<string, tf.Tensor> = {};
      this.activationLayers.forEach((name) => {
        const a = get(name);
        activations[name] =
          pool && a.rank === 4 ? tf.mean(a, [1, 2]) : a.rank > 2 ? tf.reshape(a, [a.shape[0], -1]) : a;
      });
      return { probs: probs as tf.Tensor2D, logits: logits as tf.Tensor2D, activations };
    });
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
  async runBatch(pixels: Float32Array, count: number): Promise<BatchOutput> {
    const [h, w, c] = this.inputShape;
    if (pixels.length !== count * h * w * c) {
      throw new Error(`expected ${count}×${h}×${w}×${c} = ${count * h * w * c} pixel values, got ${pixels.length}`);
    }
    const out = tf.tidy(() => this.forward(tf.tensor4d(pixels, [count, h, w, c])));
    const names = Object.keys(out.activations);
    try {
      // Read outside tidy: tidy walks returned TypedArrays element by element.
      const [probs, logits, ...acts] = (await Promise.all(
        [out.probs, out.logits, ...names.map((n) => out.activations[n])].map((t) => t.data()),
      )) as Float32Array[];
      const activations: Record<string, { width: number; values: Float32Array }> = {};
      names.forEach((name, i) => {
        activations[name] = { width: out.activations[name].shape[1] as number, values: acts[i] };
      });
      return { count, numClasses: out.probs.shape[1], probs, logits, activations };
    } finally {
      tf.dispose([out.probs, out.logits, ...Object.values(out.activations)]);
    }
  }

  dispose(): void {
    this.stored.model.dispose();
  }
}

/** Splits a batch output into per-image outputs (views, no copies). */
export function splitBatch(out: BatchOutput): ImageOutput[] {
  const k = out.numClasses;
  return Array.from({ length: out.count }, (_, i) => {
    const activations: Record<string, Float32Array> = {};
    for (const [name, a] of Object.entries(out.activations))
      activations[name] = a.values.subarray(i * a.width, (i + 1) * a.width);
    return {
      probs: out.probs.subarray(i * k, (i + 1) * k),
      logits: out.logits.subarray(i * k, (i + 1) * k),
      activations,
    };
  });
}
