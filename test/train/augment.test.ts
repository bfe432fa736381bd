import { augmentImage } from '../../src/train/augment';

/** A scripted random source: returns the given values in turn. */
const script = (values: number[]) => {
  let i = 0;
  return () => values[i++];
};

const src = Float32Array.from({ length: 9 }, (_, i) => i + 1); // 3×3: 1 2 3 / 4 5 6 / 7 8 9

test('flip mirrors each row; no shift keeps the image in place', () => {
  const dst = new Float32Array(9);
  augmentImage(src, dst, 3, 3, script([0.1, 0.5, 0.5]), { flip: true, maxShift: 1 });
  expect(Array.from(dst)).toEqual([3, 2, 1, 6, 5, 4, 9, 8, 7]);
});

test('a shift moves the content and fills the uncovered border with zeros', () => {
  const dst = new Float32Array(9);
  // no flip; dy = +1 (down), dx = −1 (left)
  augmentImage(src, dst, 3, 3, script([0.9, 0.9, 0.1]), { flip: true, maxShift: 1 });
  expect(Array.from(dst)).toEqual([0, 0, 0, 2, 3, 0, 5, 6, 0]);
});

test('with flips off and no shift range the copy is exact', () => {
  const dst = new Float32Array(9);
  augmentImage(src, dst, 3, 3, Math.random, { flip: false, maxShift: 0 });
  expect(Array.from(dst)).toEqual(Array.from(src));
});
