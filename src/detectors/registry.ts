/**
 * The detectors the service runs, in the order they are reported. Names here are the ones that
 * calibration.json, the CLI's JSON and the GraphQL API use.
 */
import { activationDistance } from './activationDistance';
import { deepKnn } from './deepKnn';
import { densityDetector } from './density';
import type { Detector } from './detector';
import { highFrequencyEnergy } from './highFrequencyEnergy';
import { lowPassDisagreement } from './lowPassDisagreement';
import { mahalanobis } from './mahalanobis';

export const COMBINED = 'combined';

/** `hiddenLayer`: the last hidden layer, whose features the density estimate models. */
export function screeningDetectors(hiddenLayer: string): Detector[] {
  return [
    highFrequencyEnergy,
    activationDistance,
    mahalanobis,
    densityDetector(hiddenLayer),
    lowPassDisagreement,
    deepKnn,
  ] as Detector[];
}
