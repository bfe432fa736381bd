import { toJson } from '../../src/cli/json';

test('integral numbers under float keys are written as floats; others untouched', () => {
  const text = toJson(
    { confidence: 1, top: [{ score: 0 }, { score: 0.25 }], classIndex: 3, n: -2 },
    new Set(['confidence', 'score']),
    0,
  );
  expect(text).toBe('{"confidence":1.0,"top":[{"score":0.0},{"score":0.25}],"classIndex":3,"n":-2}');
  expect(JSON.parse(text)).toEqual({ confidence: 1, top: [{ score: 0 }, { score: 0.25 }], classIndex: 3, n: -2 });
});

test('strings that look like the marker stay strings', () => {
  expect(toJson({ confidence: 'float:1' }, new Set(['confidence']), 0)).toBe('{"confidence":"float:1"}');
});
