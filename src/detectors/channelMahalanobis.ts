/**
 * Mahalanobis distance of one conv layer's channel means to the predicted class: Lee et al. 2018's
 * per-layer feature (each channel's activation averaged over the image, class-conditional Gaussians
 * with one covariance shared by the classes), one detector per conv layer so that the combined
 * verdict weighs the layers itself — their feature ensemble — instead of reading them blended into
 * one score.
 *
 * Why beside the `mahalanobis` detector, which already reads every layer: that one pools a conv
 * layer into channel means *and* standard deviations and blends the layers into one score by its
 * own regression. On the adversarially trained model the verdict, given the early conv layers'
 * channel means as inputs of their own, separates PGD better than with the blend alone (prototype on
 * 4 000 test images, stop 32: 0.982 → 0.991 with family-weighted calibration attacks), though each
 * alone separates little (conv2: 0.61): an image pushed across the boundary keeps the late layers
 * near the new class while the early layers' average response still belongs to neither.
 *
 * Optional (Detector.optional): fitted by `calibrate --channel-mahalanobis`, one per activation layer
 * with a spatial output (InferenceModel.spatialLayers); calibrations without them screen without.
 */
import * as tf from '@tensorflow/tfjs';
import { classExpectations } from './classExpectations';
import { argmax, classRows, Detector, FitData, stateTensors } from './detector';
import { quadraticForm, sharedGaussian } from './mahalanobis';

export interface ChannelMahalanobisState {
  readonly layer: string;
  /** Channels of the layer: its pooled activation is C means, then C standard deviations. */
  readonly channels: number;
  /** Per class: the mean of the channel means of its clean fit images. */
  readonly expectations: number[][];
  /** The inverse of the shared covariance, row-major channels × channels. */
  readonly precision: number[];
  /** Mean squared distance of the clean fit images to their own class: the score's unit. */
  readonly scale: number;
}

/** The name a layer's detector goes by in calibration.json, the API and reports. */
export const CHANNEL_MAHALANOBIS = 'channelMahalanobis';
export const channelMahalanobisName = (layer: string) => `${CHANNEL_MAHALANOBIS}:${layer}`;

/** The layer of a detector name made by channelMahalanobisName, or undefined for any other name. */
export function channelMahalanobisLayer(name: string): string | undefined {
  return name.startsWith(`${CHANNEL_MAHALANOBIS}:`) ? name.slice(CHANNEL_MAHALANOBIS.length + 1) : undefined;
}

const detectors = new Map<string, Detector<ChannelMahalanobisState>>();

/** The detector of one conv layer (one instance per layer name). */
export function channelMahalanobis(layer: string): Detector<ChannelMahalanobisState> {
  let d = detectors.get(layer);
  if (!d) detectors.set(layer, (d = make(layer)));
  return d;
}

function channelsOf(width: number, layer: string): number {
  if (width % 2 !== 0)
    throw new Error(
      `${channelMahalanobisName(layer)}: layer '${layer}' gives ${width} values per image, not a conv layer's pooled means and standard deviations`,
    );
  return width / 2;
}

function make(layer: string): Detector<ChannelMahalanobisState> {
  const name = channelMahalanobisName(layer);
  const constants = new WeakMap<ChannelMahalanobisState, Map<string, { mu: tf.Tensor2D; precision: tf.Tensor2D }>>();
  return {
    name,
    description: `Mahalanobis distance of conv layer ${layer}'s channel means to the predicted class (shared covariance), relative to clean images`,
    optional: true,
    fit(data: FitData): ChannelMahalanobisState {
      if (!data.clean.length) throw new Error(`${name}: no clean images to fit on`);
      const width = data.clean[0].activations[layer]?.length;
      if (width === undefined) throw new Error(`${name}: the model has no activation layer '${layer}'`);
      const channels = channelsOf(width, layer);
      const means = data.clean.map((f) => f.activations[layer].subarray(0, channels));
      const expectations = classExpectations(
        means.map((m) => ({ [layer]: m })),
        data.labels,
        [layer],
        data.numClasses,
      )[layer];
      return {
        layer,
        channels,
        expectations,
        ...sharedGaussian(means, data.labels, expectations, `${layer}'s channel means`),
      };
    },
    score(state, f) {
      return quadraticForm(f.activations[layer], state.expectations[argmax(f.probs)], state.precision) / state.scale;
    },
    scoreTensor(state, batch, classes) {
      const c = stateTensors(constants, state, () => ({
        mu: tf.tensor2d(state.expectations),
        precision: tf.tensor2d(state.precision, [state.channels, state.channels]),
      }));
      return tf.tidy(() => {
        const means = tf.slice(batch.activations[layer], [0, 0], [-1, state.channels]);
        const diff = tf.sub(means, classRows(c.mu, classes));
        // The precision is symmetric: diff·P needs no transposed operand.
        return tf.div(tf.sum(tf.mul(tf.matMul(diff, c.precision), diff), 1), state.scale) as tf.Tensor1D;
      });
    },
  };
}
