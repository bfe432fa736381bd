/** The preprocessing presets (src/engine/preprocessing.ts) on one pixel, against the formulas they stand for. */
import * as tf from '@tensorflow/tfjs';
import {
  applyPreprocessing,
  isIdentity,
  PREPROCESSING_PRESETS,
  preprocessingProblem,
} from '../../src/engine/preprocessing';

const pixel = (p: Parameters<typeof applyPreprocessing>[1]) =>
  Array.from(tf.tidy(() => applyPreprocessing(tf.tensor4d([0.2, 0.5, 1], [1, 1, 1, 3]), p).dataSync()));

test('unit and absent leave the pixels as they are (the same tensor)', () => {
  const x = tf.zeros([1, 2, 2, 3]) as tf.Tensor4D;
  expect(applyPreprocessing(x, PREPROCESSING_PRESETS.unit)).toBe(x);
  expect(applyPreprocessing(x, undefined)).toBe(x);
  expect(isIdentity({ mean: [0, 0, 0], std: [1] })).toBe(true);
  x.dispose();
});

test('minus-one-one, caffe (BGR, 0-255, ImageNet means) and torch (mean/std)', () => {
  const close = (got: number[], want: number[]) => want.forEach((w, i) => expect(got[i]).toBeCloseTo(w, 3));
  close(pixel(PREPROCESSING_PRESETS['minus-one-one']), [-0.6, 0, 1]);
  close(pixel(PREPROCESSING_PRESETS.caffe), [255 - 103.939, 127.5 - 116.779, 51 - 123.68]);
  close(pixel(PREPROCESSING_PRESETS.torch), [(0.2 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (1 - 0.406) / 0.225]);
});

test('a malformed one is named', () => {
  expect(preprocessingProblem({ mean: [1, 2] }, 3)).toBe("'mean' must be 1 or 3 finite numbers, got [1,2]");
  expect(preprocessingProblem({ std: [0] }, 1)).toBe("'std' must not contain 0");
  expect(preprocessingProblem({ channelOrder: 'hsv' }, 3)).toBe(`'channelOrder' must be 'rgb' or 'bgr', got "hsv"`);
  expect(preprocessingProblem({ scale: 2, gamma: 1 }, 3)).toMatch(/unknown fields gamma/);
  expect(preprocessingProblem(PREPROCESSING_PRESETS.caffe, 3)).toBeUndefined();
});
