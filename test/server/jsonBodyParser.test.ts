/**
 * Large JSON bodies are parsed, and their large base64 images read, off the service's thread
 * (src/server/jsonBodyParser.ts, jsonBodyWorker.ts, jsonText.ts): the same body and the same bytes
 * as parsing here, each image's reading (bytes, too large, invalid) kept for the resolver, and no
 * JSON.parse or base64 decoding of a large body on this thread.
 */
import { randomBytes } from 'crypto';
import { readBase64 } from '../../src/images/base64';
import { JsonBodyParser, OFF_THREAD_BODY_BYTES } from '../../src/server/jsonBodyParser';
import { takeLargeBase64 } from '../../src/server/jsonText';

const Q = 'mutation($images: [ImageInput!]!) { classify(images: $images) { index } }';
const image = randomBytes(300_000);
const other = randomBytes(200_000);
let parser: JsonBodyParser;

beforeEach(() => (parser = new JsonBodyParser(1_000_000)));
afterEach(() => parser.close());

/** The reading holds these bytes (jest's toEqual walks a buffer element by element: seconds for 300 KB). */
function same(reading: unknown, bytes: Buffer): boolean {
  return (
    typeof reading === 'object' &&
    reading !== null &&
    'bytes' in reading &&
    Buffer.isBuffer(reading.bytes) &&
    reading.bytes.equals(bytes)
  );
}

function body(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

test('takeLargeBase64: every large base64 string at any depth becomes a token, short ones stay', () => {
  const small = Buffer.from('tiny').toString('base64');
  const parsed = JSON.parse(
    JSON.stringify([
      { query: Q, variables: { images: [{ base64: image.toString('base64') }, { base64: small }] } },
      {
        query: Q,
        variables: { deep: { list: [[{ base64: `data:image/png;base64,${other.toString('base64url')}` }]] } },
      },
    ]),
  ) as Array<{ variables: Record<string, unknown> }>;
  const taken = takeLargeBase64(parsed, 64 * 1024, 1_000_000, 'p:');
  expect(taken.map((t) => t.token).sort()).toEqual(['p:0', 'p:1']);
  const first = parsed[0].variables.images as Array<{ base64: string }>;
  expect(first[1].base64).toBe(small);
  const byToken = new Map(taken.map((t) => [t.token, t.reading]));
  expect(same(byToken.get(first[0].base64), image)).toBe(true);
  const deep = (parsed[1].variables.deep as { list: Array<Array<{ base64: string }>> }).list[0][0].base64;
  expect(same(byToken.get(deep), other)).toBe(true); // URL-safe alphabet and a data: prefix read alike
  // A token is not base64: one that reached the resolver without its reading is INVALID_BASE64.
  expect(readBase64('p:0', 1_000_000)).toEqual({ invalid: true });
});

test('a large body: parsed on the parser thread, its images read there and handed over by token', async () => {
  const payload = { query: Q, variables: { images: [{ base64: image.toString('base64') }, { base64: 'QUJD' }] } };
  const bytes = body(payload);
  expect(bytes.length).toBeGreaterThanOrEqual(OFF_THREAD_BODY_BYTES);
  const parse = jest.spyOn(JSON, 'parse');
  const fromString = jest.spyOn(Buffer, 'from');
  try {
    const parsed = await parser.parse(bytes);
    expect(parse).not.toHaveBeenCalled(); // not on this thread
    expect(bytes.length).toBe(0); // moved to the parser's thread, not copied
    // Only the handed-over buffers are wrapped here (Buffer.from(arrayBuffer)), never a string decoded.
    expect(fromString.mock.calls.filter((c) => typeof c[0] === 'string')).toEqual([]);
    if (!('body' in parsed)) throw new Error(parsed.invalid);
    const images = (parsed.body as typeof payload).variables.images;
    expect(images[1].base64).toBe('QUJD');
    expect(images[0].base64).toMatch(/^advsieve:body-image:[0-9a-f]{24}:0$/);
    expect(same(parsed.images.get(images[0].base64), image)).toBe(true);
    expect(parsed.images.size).toBe(1);
    expect({ ...(parsed.body as typeof payload), variables: {} }).toEqual({ ...payload, variables: {} });
  } finally {
    parse.mockRestore();
    fromString.mockRestore();
  }
});

test("each image's reading comes back: over maxFileBytes (not decoded), not base64", async () => {
  const big = randomBytes(1_200_000).toString('base64');
  const mangled = `${image.toString('base64').slice(0, 100_000)}!!`;
  const parsed = await parser.parse(body({ query: Q, variables: { images: [{ base64: big }, { base64: mangled }] } }));
  if (!('body' in parsed)) throw new Error(parsed.invalid);
  const [a, b] = (parsed.body as { variables: { images: Array<{ base64: string }> } }).variables.images;
  expect(parsed.images.get(a.base64)).toEqual({ tooLarge: 1_200_000 });
  expect(parsed.images.get(b.base64)).toEqual({ invalid: true });
});

test('a token names an image of its own body only: each body has its own prefix', async () => {
  const payload = () => body({ query: Q, variables: { images: [{ base64: image.toString('base64') }] } });
  const [one, two] = await Promise.all([parser.parse(payload()), parser.parse(payload())]);
  const token = (p: typeof one) => [...p.images.keys()][0];
  expect(one.images.size).toBe(1);
  expect(two.images.size).toBe(1);
  expect(token(one)).not.toBe(token(two));
  expect(two.images.get(token(one))).toBeUndefined();
});

test('what is not a JSON object or list is refused with the same words on either thread', async () => {
  const pad = ' '.repeat(OFF_THREAD_BODY_BYTES);
  expect(await parser.parse(Buffer.from(`${pad}{"query": `))).toEqual({
    invalid: expect.stringMatching(/^the body is not JSON: /),
    images: new Map(),
  });
  expect(await parser.parse(Buffer.from(`${pad}"a string"`))).toEqual({
    invalid: "the JSON body must be an object or a list; it starts with '\"'",
    images: new Map(),
  });
  expect(await parser.parse(Buffer.from('"a string"'))).toEqual({
    invalid: "the JSON body must be an object or a list; it starts with '\"'",
    images: new Map(),
  });
  expect(await parser.parse(Buffer.from(pad))).toEqual({ body: {}, images: new Map() });
  expect(await parser.parse(Buffer.from(''))).toEqual({ body: {}, images: new Map() });
});

test('a parser thread that dies fails its bodies, and the next body starts another', async () => {
  const payload = () => body({ query: Q, variables: { images: [{ base64: image.toString('base64') }] } });
  await parser.parse(payload()); // started
  const worker = (parser as unknown as { worker: { terminate(): Promise<number> } }).worker;
  // The body goes to a thread already told to stop: it can never answer. (Told to stop after the
  // body was sent, a quick thread sometimes answered first on a loaded machine, and the test raced.)
  const dying = worker.terminate();
  const inFlight = parser.parse(payload());
  await dying;
  await expect(inFlight).rejects.toThrow(/parser's thread exited/);
  const again = await parser.parse(payload());
  expect(same([...again.images.values()][0], image)).toBe(true);
});
