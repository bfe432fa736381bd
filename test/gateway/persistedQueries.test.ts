/** Item 10 of issue 11: persisted queries get coded errors, APQ's cache is per key, and APQ is off in production. */
import { createHash } from 'crypto';
import { apqEnabled, PerKeyDocumentCache, persistedQueryError } from '../../src/gateway/persistedQueries';

test('a document cached for one key is not found by another, nor outside a request', async () => {
  let owner: string | undefined = 'key-a';
  const cache = new PerKeyDocumentCache(() => owner);
  await cache.set('apq:h', '{ model { id } }');
  expect(await cache.get('apq:h')).toBe('{ model { id } }');
  owner = 'key-b';
  expect(await cache.get('apq:h')).toBeUndefined();
  owner = '';
  expect(await cache.get('apq:h')).toBeUndefined();
  owner = undefined;
  expect(await cache.get('apq:h')).toBeUndefined();
  await cache.set('apq:x', 'y');
  owner = 'key-a';
  expect(await cache.delete('apq:h')).toBe(true);
  expect(await cache.get('apq:h')).toBeUndefined();
});

test('bounded: the oldest document goes first, and an oversized one is not kept', async () => {
  const cache = new PerKeyDocumentCache(() => 'k', 2, 10);
  await cache.set('a', '1');
  await cache.set('b', '2');
  await cache.set('c', '3');
  expect([await cache.get('a'), await cache.get('b'), await cache.get('c')]).toEqual([undefined, '2', '3']);
  await cache.set('d', 'x'.repeat(11));
  expect(await cache.get('d')).toBeUndefined();
});

test('APQ: off in production unless trusted documents or ADVSIEVE_APQ say otherwise', () => {
  expect(apqEnabled(undefined, false, false)).toBe(true);
  expect(apqEnabled(undefined, true, false)).toBe(false);
  expect(apqEnabled(undefined, true, true)).toBe(true);
  expect(apqEnabled(true, true, false)).toBe(true);
  expect(apqEnabled(false, false, true)).toBe(false);
});

test('malformed extensions.persistedQuery: each its own code', () => {
  const hash = createHash('sha256').update('{ model { id } }').digest('hex');
  const code = (p: unknown, q?: unknown) => persistedQueryError(p, q)?.extensions.code;
  expect(code(undefined)).toBeUndefined();
  expect(code({ version: 1, sha256Hash: hash })).toBeUndefined();
  expect(code({ version: 1, sha256Hash: hash }, '{ model { id } }')).toBeUndefined();
  expect(code({ version: 2, sha256Hash: hash })).toBe('PERSISTED_QUERY_VERSION_NOT_SUPPORTED');
  expect(code('x')).toBe('PERSISTED_QUERY_INVALID');
  expect(code({ version: 1, sha256Hash: 'zz' })).toBe('PERSISTED_QUERY_INVALID');
  expect(code({ version: 1, sha256Hash: hash }, '{ model { sha256 } }')).toBe('PERSISTED_QUERY_HASH_MISMATCH');
  expect(persistedQueryError({ version: 2 }, undefined)?.extensions.http).toMatchObject({ status: 400 });
});
