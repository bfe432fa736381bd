/**
 * The JSON body's shape, measured on its bytes as they arrive (src/server/jsonShape.ts): each
 * limit refused with its code, the gateway's own counting of variables' list entries mirrored,
 * and the same answer however the body is cut into chunks (strings, escapes and keys split).
 */
import { JsonShapeScan, jsonShapeLimits, jsonShapeRefusal } from '../../src/server/jsonShape';

const Q = 'mutation($images: [ImageInput!]!) { classify(images: $images) { index } }';
const limits = jsonShapeLimits(64, 8); // 2048 keys and entries, depth 32

function outcome(body: string, chunk = Infinity): string {
  const bytes = Buffer.from(body);
  const scan = new JsonShapeScan(limits);
  for (let i = 0; i < bytes.length; i += chunk) {
    const r = scan.feed(bytes.subarray(i, Math.min(bytes.length, i + chunk)));
    if (r) return `${String(r.extensions.code)} ${String(r.extensions.limit)}: ${r.message}`;
  }
  const r = scan.end();
  return r ? `${String(r.extensions.code)} ${String(r.extensions.limit)}: ${r.message}` : 'ok';
}

const cases: Record<string, [string, RegExp | 'ok']> = {
  'a full request': [JSON.stringify({ query: Q, variables: { images: Array(64).fill({ base64: 'QUJD' }) } }), 'ok'],
  'a full batch': [
    JSON.stringify(Array(8).fill({ query: Q, variables: { images: Array(64).fill({ file: null }) } })),
    'ok',
  ],
  'one image too many': [
    JSON.stringify({ query: Q, variables: { images: Array(65).fill({ base64: 'QUJD' }) } }),
    /^PAYLOAD_TOO_LARGE maxImages: the operation: its variables hold more than 64 list entries/,
  ],
  'in operation 2 of a batch, lists in lists counted once': [
    JSON.stringify([{ query: Q }, { query: Q }, { query: Q, variables: { a: [[1, 2, 3], ...Array(64).fill(0)] } }]),
    /^PAYLOAD_TOO_LARGE maxImages: operation 2 of the batch/,
  ],
  'a list of lists within the limit': [JSON.stringify({ query: Q, variables: { a: [Array(1000).fill(1)] } }), 'ok'],
  'an escaped "variables" key': [
    `{"query":"q","vari\\u0061bles":{"i":${JSON.stringify(Array(65).fill(1))}}}`,
    /^PAYLOAD_TOO_LARGE maxImages/,
  ],
  'lists outside the variables': [JSON.stringify({ query: Q, extensions: { x: Array(900).fill(1) } }), 'ok'],
  'too many keys': [
    JSON.stringify({ query: Q, variables: Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`k${i}`, 1])) }),
    /^PAYLOAD_TOO_LARGE maxJsonKeys: the JSON body holds more than 2048 object keys/,
  ],
  'too many entries in all': [
    JSON.stringify({ query: Q, extensions: { x: Array.from({ length: 40 }, () => Array(60).fill(1)) } }),
    /^PAYLOAD_TOO_LARGE maxJsonEntries/,
  ],
  'too deep': [`{"query":"q","variables":{"x":${'['.repeat(40)}${']'.repeat(40)}}}`, /^BAD_USER_INPUT maxJsonDepth/],
  'a long batch, counted to its end': [
    `[${'0,'.repeat(20_000)}{"query":"q"}]`,
    /^TOO_MANY_OPERATIONS maxBatchedOperations: the request batches 20001 operations; at most 8/,
  ],
  'quotes and backslashes in strings': [
    JSON.stringify({ query: 'a"\\\\"b', variables: { s: '\\\\\\"', t: '"]}[{', images: Array(64).fill(1) } }),
    'ok',
  ],
  'not JSON': ['{"query": "unterminated', 'ok'],
};

describe('jsonShapeRefusal', () => {
  for (const [name, [body, want]] of Object.entries(cases)) {
    test(`${name}: the same however the body is chunked`, () => {
      const whole = outcome(body);
      if (want === 'ok') expect(whole).toBe('ok');
      else expect(whole).toMatch(want);
      for (const size of [1, 2, 3, 7, 64, 4096]) expect([size, outcome(body, size)]).toEqual([size, whole]);
      const r = jsonShapeRefusal(Buffer.from(body), limits);
      expect(r ? String(r.extensions.code) : 'ok').toBe(whole.split(' ')[0]);
    });
  }

  test('a body of a million unused keys is refused within its first 100 KB', () => {
    const parts = ['{"query":"q","variables":{'];
    for (let i = 0; i < 1_000_000; i++) parts.push(`"k${i}":1,`);
    const bytes = Buffer.from(parts.join('') + '"z":1}}');
    const scan = new JsonShapeScan(limits);
    let fed = 0;
    for (; fed < bytes.length; fed += 65_536) if (scan.feed(bytes.subarray(fed, fed + 65_536))) break;
    expect(fed).toBeLessThan(100_000);
  });
});
