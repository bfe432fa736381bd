/**
 * Class expectations: μ(layer, class), the mean activation of clean training images of a class at
 * a layer. Each class has a stable expectation per layer, and an adversarial image's activations
 * travel from its origin class's expectation towards the target's; the activation-distance and
 * Mahalanobis detectors and the feature trajectory all start from these means.
 */
import { byClassOrPooled, squaredDistance } from './detector';

/** Per layer: numClasses rows of the layer's width. */
export type ClassExpectations = Readonly<Record<string, number[][]>>;

export function classExpectations(
  activations: ReadonlyArray<Readonly<Record<string, Float32Array>>>,
  labels: Int32Array,
  layers: readonly string[],
  numClasses: number,
): ClassExpectations {
  // A class without fit images gets the mean of all of them (see MIN_CLASS_IMAGES).
  const groups = byClassOrPooled(labels, numClasses);
  const out: Record<string, number[][]> = {};
  for (const layer of layers) {
    const width = activations[0][layer].length;
    out[layer] = groups.map((members) => {
      const mu = new Float64Array(width);
      for (const i of members) {
        const a = activations[i][layer];
        for (let j = 0; j < width; j++) mu[j] += a[j];
      }
      return Array.from(mu, (v) => (members.length ? v / members.length : 0));
    });
  }
  return out;
}

export interface TrajectoryStep {
  readonly layer: string;
  /** Euclidean distance to every class expectation at this layer. */
  readonly distances: number[];
  /** The class whose expectation is nearest. */
  readonly nearestClass: number;
}

/** The image's feature trajectory: per layer, its distance to every class expectation and the nearest one. */
export function trajectory(
  mu: ClassExpectations,
  activations: Readonly<Record<string, Float32Array>>,
): TrajectoryStep[] {
  return Object.entries(mu).map(([layer, means]) => {
    const distances = means.map((m) => Math.sqrt(squaredDistance(activations[layer], m)));
    return { layer, distances, nearestClass: distances.indexOf(Math.min(...distances)) };
  });
}
