/**
 * Each API key's bucket of request-body bytes (ADVSIEVE_RATE_LIMIT_BYTES_PER_SECOND/_BURST): large
 * bodies cost the main thread by their size (reading, parsing, base64), so a key is paced by the
 * bytes it sends, charged from Content-Length before the body is read; another key is not.
 */
import * as fs from 'fs';
import { createApiKey } from '../../src/gateway/apiKeys';
import { fixtureFiles, startServer, TestServer } from './helpers';

const MB = 1_000_000;
const a = createApiKey('heavy', ['screen']);
const b = createApiKey('light', ['screen']);
const SCREEN = 'mutation($i:[ImageInput!]!){screen(images:$i){index prediction{label} error{code}}}';
const trouser = fs.readFileSync(fixtureFiles().find((f) => f.includes('trouser'))!).toString('base64');

/** A screen request of one image, padded with whitespace (which JSON ignores) to `bytes`. */
function bodyOf(bytes: number): string {
  const body = JSON.stringify({ query: SCREEN, variables: { i: [{ base64: trouser }] } });
  return body + ' '.repeat(Math.max(0, bytes - body.length));
}

async function post(server: TestServer, key: string, body: string) {
  const res = await fetch(`${server.base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body,
  });
  const json = (await res.json()) as { errors?: Array<{ extensions: Record<string, unknown> }> };
  return { status: res.status, retryAfter: res.headers.get('retry-after'), error: json.errors?.[0]?.extensions };
}

let server: TestServer;
beforeAll(async () => {
  server = await startServer({
    ADVSIEVE_API_KEYS: JSON.stringify([a.entry, b.entry]),
    ADVSIEVE_RATE_LIMIT_BYTES_PER_SECOND: String(MB / 10),
    ADVSIEVE_RATE_LIMIT_BYTES_BURST: String(3 * MB),
    ADVSIEVE_AUDIT: 'off',
  });
});
afterAll(() => server?.stop());

test('a key that sends more bytes than its bucket is RATE_LIMITED by bytes; another key is served', async () => {
  const big = bodyOf(1.4 * MB);
  expect((await post(server, a.key, big)).status).toBe(200);
  expect((await post(server, a.key, big)).status).toBe(200);
  const third = await post(server, a.key, big); // 4.2 MB > the 3 MB bucket
  expect(third.status).toBe(429);
  expect(third.error).toMatchObject({ code: 'RATE_LIMITED', limit: 'bodyBytesPerSecond' });
  // Refilled at 100 kB/s: about 12 s for the 1.2 MB that is missing.
  expect(Number(third.error!.retryAfterMs)).toBeGreaterThan(5000);
  expect(Number(third.error!.retryAfterMs)).toBeLessThan(15000);
  expect(Number(third.retryAfter)).toBeGreaterThanOrEqual(1);
  // Small requests of the same key still pass once the bucket has a few kB; the other key is untouched.
  expect((await post(server, b.key, big)).status).toBe(200);
  await new Promise((r) => setTimeout(r, 100));
  expect((await post(server, a.key, bodyOf(0))).status).toBe(200);
});
