/**
 * tfjs-layers' Conv2D runs tf.fused.conv2d, whose gradient is a customGrad: when the tape replays
 * it, it computes the gradients of the input, the filter and the bias together, whichever are
 * wanted. An input gradient (attacks, Grad-CAM) throws the filters' away: measured on nsfwjs'
 * MobileNetV2 at batch 8 on wasm, its 35 Conv2DBackpropFilter took 18% of the gradient's time.
 * tf.conv2d's registered gradient instead gives the tape one closure per input, and the tape calls
 * only those on the path from x. So while a tape records, the model's Conv2D layers run unfused:
 * conv2d, then the bias and the activation as ops of their own — what tfjs-core's fused ops already
 * do under a tape for any activation but linear (shouldFuse in fused_util). Outside a tape (predict,
 * the forward pass) the layers keep their fused kernel.
 */
import * as tf from '@tensorflow/tfjs';

/** The parts of tfjs-layers' Conv2D (protected there) that its unfused twin reads. */
interface Conv2DInternals {
  readonly kernel: tf.LayerVariable;
  readonly bias?: tf.LayerVariable | null;
  readonly activation?: { apply(x: tf.Tensor): tf.Tensor } | null;
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor | tf.Tensor[];
}

/** Whether a gradient tape is recording (tfjs-core's own test before it fuses an op). */
function tapeRecording(): boolean {
  return tf.engine().state.gradientDepth > 0;
}

/**
 * Conv2D's output by tf.conv2d, then the bias and the activation, NHWC, with the layer's geometry
 * (as tfjs-layers' conv2dWithBiasActivation reads it).
 */
function unfusedConv2D(layer: tf.layers.Layer, conv: Conv2DInternals): (x: tf.Tensor4D) => tf.Tensor {
  const config = layer.getConfig();
  const strides = config.strides as [number, number];
  const dilations = config.dilationRate as [number, number];
  const pad = config.padding === 'same' ? 'same' : 'valid';
  return (x) =>
    tf.tidy(() => {
      let y: tf.Tensor = tf.conv2d(x, conv.kernel.read() as tf.Tensor4D, strides, pad, 'NHWC', dilations);
      if (conv.bias) y = tf.add(y, conv.bias.read());
      return conv.activation ? conv.activation.apply(y) : y;
    });
}

/**
 * Makes every channels-last Conv2D of `model` (nested models included) run unfused while a tape
 * records. Returns how many layers it changed. The layers are changed in place: call it on a model
 * loaded for the caller alone.
 */
export function unfuseConvolutionsUnderTape(model: tf.LayersModel): number {
  let changed = 0;
  for (const layer of model.layers) {
    if (layer instanceof tf.LayersModel) {
      changed += unfuseConvolutionsUnderTape(layer);
      continue;
    }
    if (layer.getClassName() !== 'Conv2D' || layer.getConfig().dataFormat !== 'channelsLast') continue;
    const conv = layer as unknown as Conv2DInternals;
    const fused = conv.call.bind(layer);
    const unfused = unfusedConv2D(layer, conv);
    conv.call = (inputs, kwargs) => {
      if (!tapeRecording() || (Array.isArray(inputs) && inputs.length !== 1)) return fused(inputs, kwargs);
      return unfused((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D);
    };
    changed++;
  }
  return changed;
}
