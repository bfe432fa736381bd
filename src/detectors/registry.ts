/**
 * The detectors the service runs, in the order they are reported. Names here are the ones that
 * calibration.json, the CLI's JSON and the GraphQL API use.
 */
import { activationDistance } from './activationDistance';
import { boundaryMargin } from './boundaryMargin';
import { CHANNEL_MAHALANOBIS, channelMahalanobis, channelMahalanobisLayer } from './channelMahalanobis';
import { deepKnn } from './deepKnn';
import { densityDetector } from './density';
import type { Detector } from './detector';
import { highFrequencyEnergy } from './highFrequencyEnergy';
import { lowPassDisagreement } from './lowPassDisagreement';
import { mahalanobis } from './mahalanobis';

export const COMBINED = 'combined';

/**
 * `hiddenLayer`: the last hidden layer, whose features the density estimate models. `withOptional`:
 * also the optional detectors (Detector.optional) — all of them (true) or those named — which
 * calibrate fits only when asked (`calibrate --deep-knn`, `--boundary-margin`) and the screener
 * runs only when the calibration has their state. Deep k-NN is one: on the bundled model it did
 * not move the combined verdict's evasion rates beyond their noise and cost ~0.1 of the screening
 * / forward-only throughput (docs/figures.md). Boundary margin is the other: it costs nothing, and
 * the bundled calibrations predate it. The channel-means Mahalanobis detectors are the third kind,
 * one per layer in `channelLayers` (the model's conv layers; `calibrate --channel-mahalanobis`), all
 * named by CHANNEL_MAHALANOBIS in `withOptional`.
 */
export function screeningDetectors(
  hiddenLayer: string,
  withOptional: boolean | readonly string[] = false,
  channelLayers: readonly string[] = [],
): Detector[] {
  const all = [
    highFrequencyEnergy,
    activationDistance,
    mahalanobis,
    densityDetector(hiddenLayer),
    lowPassDisagreement,
    deepKnn,
    boundaryMargin,
    ...channelLayers.map(channelMahalanobis),
  ] as Detector[];
  if (withOptional === true) return all;
  const named = withOptional === false ? [] : withOptional;
  // A channel-means detector is named by its kind: one name asks for every layer's.
  const kindOf = (d: Detector) => (channelMahalanobisLayer(d.name) !== undefined ? CHANNEL_MAHALANOBIS : d.name);
  return all.filter((d) => !d.optional || named.includes(d.name) || named.includes(kindOf(d)));
}
