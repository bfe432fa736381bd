/**
 * JSON for command output in which some fields are always floats. JSON.stringify writes the float
 * 1.0 as `1`, which clients in typed languages (and the contract check) read as an integer; a
 * softmax in float32 does saturate to exactly 1. Numbers under the named keys are written with a
 * decimal point when integral.
 */
const MARK = '\u0000float:';

export function toJson(value: unknown, floatKeys: ReadonlySet<string>, indent = 2): string {
  const text = JSON.stringify(
    value,
    (key, v: unknown) => (floatKeys.has(key) && typeof v === 'number' && Number.isInteger(v) ? `${MARK}${v}` : v),
    indent,
  );
  return text.replace(/"\\u0000float:(-?\d+)"/g, '$1.0');
}
