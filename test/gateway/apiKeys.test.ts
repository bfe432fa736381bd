/** API keys: the key's shape, the stored hash, recognition, and configuration errors that name the source and entry. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ApiKeyStore, apiKeysFromEnv, createApiKey, hashKey, keyIdOf, parseApiKeys } from '../../src/gateway/apiKeys';
import { configFromEnv } from '../../src/server/config';

test('a new key: asv_<id>_<43 base64url chars>, its entry holds only the SHA-256 of the whole key', () => {
  const { key, entry } = createApiKey('ci-runner', ['screen', 'admin']);
  expect(key).toMatch(/^asv_ci-runner_[A-Za-z0-9_-]{43}$/);
  expect(entry).toEqual({ id: 'ci-runner', scopes: ['screen', 'admin'], sha256: hashKey(key) });
  expect(JSON.stringify(entry)).not.toContain(key.slice(14));
  expect(keyIdOf(key)).toBe('ci-runner');
  expect(createApiKey('ci-runner', ['screen']).key).not.toBe(key);
});

test('the store recognises its keys, and nothing else', () => {
  const a = createApiKey('a', ['screen']);
  const b = createApiKey('b', ['attack', 'screen'], { perSecond: 1, burst: 2 });
  const store = new ApiKeyStore([a.entry, b.entry]);
  expect(store.enabled).toBe(true);
  expect(store.verify(a.key)).toEqual({ keyId: 'a', scopes: new Set(['screen']) });
  expect([...store.verify(b.key)!.scopes].sort()).toEqual(['attack', 'screen']);
  expect(store.entry('b')!.rateLimit).toEqual({ perSecond: 1, burst: 2 });
  // A's secret under b's id, a changed character, an unknown id, things that are not keys.
  expect(store.verify(`asv_b_${a.key.slice('asv_a_'.length)}`)).toBeUndefined();
  const last = a.key[a.key.length - 1];
  expect(store.verify(a.key.slice(0, -1) + (last === 'A' ? 'B' : 'A'))).toBeUndefined();
  expect(store.verify(a.key.replace('asv_a_', 'asv_c_'))).toBeUndefined();
  for (const junk of ['', 'asv_', 'asv_a', 'Bearer x', a.entry.sha256]) expect(store.verify(junk)).toBeUndefined();
  expect(new ApiKeyStore([]).enabled).toBe(false);
});

test('configuration errors name the source, the entry and what is wrong', () => {
  const good = createApiKey('ok', ['screen']).entry;
  const bad = (entries: unknown[]) => () => parseApiKeys(JSON.stringify(entries), 'keys.json');
  expect(bad([good, { ...good, id: 'x', scopes: ['screen', 'root'] }])).toThrow(
    /keys.json: entry 1 \(id 'x'\): scopes: each must be one of screen, oracle, policy, jobs, attack, admin; got "root"/,
  );
  expect(bad([{ ...good, sha256: 'abc' }])).toThrow(/entry 0 \(id 'ok'\): sha256 must be 64 lower-case hex/);
  expect(bad([{ ...good, id: 'a_b' }])).toThrow(/entry 0 \(id 'a_b'\): id must be/);
  expect(bad([{ ...good, scope: ['screen'] }])).toThrow(/unknown fields \(scope\)/);
  expect(bad([{ ...good, scopes: [] }])).toThrow(/non-empty array/);
  expect(bad([{ ...good, rateLimit: { perSecond: -1, burst: 3 } }])).toThrow(
    /rateLimit.perSecond must be a number ≥ 0/,
  );
  expect(bad([{ ...good, rateLimit: { perSecond: 1, burst: 0.5 } }])).toThrow(/rateLimit.burst must be an integer ≥ 1/);
  expect(() => parseApiKeys('{"id": "x"}', 'keys.json')).toThrow(/keys.json: must be a JSON array/);
  expect(() => parseApiKeys('[{', 'keys.json')).toThrow(/keys.json: not JSON/);
});

test('file and inline keys together; a duplicate id or a missing file stops the start (configFromEnv)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-keys-'));
  const file = path.join(dir, 'keys.json');
  const a = createApiKey('a', ['screen']).entry;
  const b = createApiKey('b', ['admin']).entry;
  fs.writeFileSync(file, JSON.stringify([a]));
  expect(apiKeysFromEnv({ ADVSIEVE_API_KEYS_FILE: file, ADVSIEVE_API_KEYS: JSON.stringify([b]) })).toEqual([a, b]);
  expect(() => apiKeysFromEnv({ ADVSIEVE_API_KEYS_FILE: file, ADVSIEVE_API_KEYS: JSON.stringify([a]) })).toThrow(
    /'a' is configured twice/,
  );
  expect(() => configFromEnv({ ADVSIEVE_API_KEYS_FILE: path.join(dir, 'missing.json') })).toThrow(
    /ADVSIEVE_API_KEYS_FILE .*missing.json: cannot read/,
  );
  fs.writeFileSync(file, JSON.stringify([{ ...a, scopes: 'screen' }]));
  expect(() => configFromEnv({ ADVSIEVE_API_KEYS_FILE: file })).toThrow(
    new RegExp(`ADVSIEVE_API_KEYS_FILE ${file}: entry 0 \\(id 'a'\\): scopes must be`),
  );
  expect(configFromEnv({}).gateway.apiKeys).toEqual([]);
  fs.rmSync(dir, { recursive: true });
});

test('gateway settings from the environment, checked', () => {
  const g = configFromEnv({}).gateway;
  expect(g).toMatchObject({ rateLimit: { perSecond: 100, burst: 512 }, maxBatchedOperations: 8, metrics: 'on' });
  expect(configFromEnv({ ADVSIEVE_METRICS: '9100' }).gateway.metrics).toEqual({ port: 9100, host: '127.0.0.1' });
  expect(configFromEnv({ ADVSIEVE_METRICS: 'OFF' }).gateway.metrics).toBe('off');
  expect(() => configFromEnv({ ADVSIEVE_METRICS: '0' })).toThrow(/ADVSIEVE_METRICS must be 'on', 'off' or a port/);
  expect(() => configFromEnv({ ADVSIEVE_MAX_DEPTH: '0' })).toThrow(/ADVSIEVE_MAX_DEPTH must be an integer ≥ 1/);
  expect(() => configFromEnv({ ADVSIEVE_RATE_LIMIT_BURST: 'lots' })).toThrow(/ADVSIEVE_RATE_LIMIT_BURST/);
  expect(configFromEnv({ ADVSIEVE_MAX_TOKENS: '50' }).gateway.queryLimits.maxTokens).toBe(50);
});
