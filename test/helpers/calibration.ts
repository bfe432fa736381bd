import { calibrate, CalibrateOptions } from '../../src/calibration/calibrate';
import type { Calibration } from '../../src/calibration/calibrationFile';
import { loadFashionMnist } from '../../src/data/fashionMnist';
import type { InferenceModel } from '../../src/engine/model';

/** A small calibration on the first training images (seconds, not minutes): for plumbing, not figures. */
export async function smallCalibration(
  model: InferenceModel,
  extra: Partial<CalibrateOptions> = {},
): Promise<Calibration> {
  const train = loadFashionMnist('train', undefined, 600);
  return calibrate(
    model,
    {
      pixels: train.pixels,
      labels: Int32Array.from(train.labels),
      count: train.count,
      source: 'fashion-mnist train (test)',
    },
    { fit: 400, holdout: 140, attacked: 60, seed: 3, targetFpr: 0.05, maxAccuracyCost: 0.01, ...extra },
    model.stored.sha256,
  );
}
