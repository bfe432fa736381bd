/**
 * evaluate's draw (`--count`, `--seed`, `--offset`): disjoint offsets split one draw across
 * processes, so the parts together are exactly the images of the whole.
 */
import { sample } from '../../src/cli/commands/evaluate';

const size = 3;
const count = 50;
const set = {
  pixels: Float32Array.from({ length: count * size }, (_, i) => Math.floor(i / size)),
  labels: Int32Array.from({ length: count }, (_, i) => i % 10),
  count,
};
/** The source index of each drawn image (every pixel of image i is i). */
const drawn = (s: { pixels: Float32Array; count: number }) =>
  Array.from({ length: s.count }, (_, k) => s.pixels[k * size]);

test('offsets split the seeded draw: the parts concatenated are the whole, in order', () => {
  const whole = drawn(sample(set, 30, 4, size));
  const parts = [sample(set, 12, 4, size, 0), sample(set, 12, 4, size, 12), sample(set, 12, 4, size, 24)].map(drawn);
  expect(parts.map((p) => p.length)).toEqual([12, 12, 12]);
  expect([...parts[0], ...parts[1], ...parts[2].slice(0, 6)]).toEqual(whole);
  // A different seed draws a different order.
  expect(drawn(sample(set, 30, 5, size))).not.toEqual(whole);
  // Labels travel with their images.
  const s = sample(set, 10, 4, size, 7);
  drawn(s).forEach((i, k) => expect(s.labels[k]).toBe(i % 10));
});

test('without an offset a count of the whole set keeps the set; with one it drops the skipped images', () => {
  expect(sample(set, count, 1, size)).toBe(set);
  const rest = drawn(sample(set, count, 1, size, 20));
  expect(rest).toHaveLength(count - 20); // count is "at most": only 30 of the order remain past 20
  expect(new Set([...drawn(sample(set, 20, 1, size)), ...rest]).size).toBe(count);
});
