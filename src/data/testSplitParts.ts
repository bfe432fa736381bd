/**
 * Fashion-MNIST's test split in two seeded, disjoint parts. The reference model was trained on all
 * 60 000 training images, so thresholds read on training images are read on images it fits better
 * than new ones: set for 5 % there, they flagged 7.1 % of test images. The threshold part gives
 * calibration clean images the model never saw; the evaluation part stays the evaluation's, so no
 * figure is measured on an image that set a threshold.
 */
import { mulberry32, permutation } from '../train/random';

export interface TestPart {
  readonly seed: number;
  /** Images in the threshold part. */
  readonly count: number;
  /** Images in the split. */
  readonly of: number;
}

export const DEFAULT_THRESHOLD_PART: TestPart = { seed: 20261203, count: 5000, of: 10000 };

export function testSplitParts(part: TestPart): { threshold: Int32Array; evaluation: Int32Array } {
  if (!(part.count > 0 && part.count < part.of)) {
    throw new RangeError(
      `the threshold part takes 1 to ${part.of - 1} of the ${part.of} test images, got ${part.count}`,
    );
  }
  const order = permutation(part.of, mulberry32(part.seed));
  const threshold = Int32Array.from(order.subarray(0, part.count)).sort();
  const evaluation = Int32Array.from(order.subarray(part.count)).sort();
  return { threshold, evaluation };
}

export const describeTestPart = (part: TestPart, which: 'threshold' | 'evaluation') =>
  `fashion-mnist test, ${which} part (${which === 'threshold' ? part.count : part.of - part.count} of ${part.of}, seed ${part.seed})`;
