/** The service's configuration from the environment: defaults, checked values, production's rules. */
import { configFromEnv, connectionLimits } from '../../src/server/config';
import { openFileLimit } from '../../src/util/openFileLimit';

test('defaults: port 4000, attacks on outside production, the engine’s own batching', () => {
  const c = configFromEnv({});
  expect(c).toMatchObject({ port: 4000, production: false, attacksEnabled: true, maxFiles: 64, maxImages: 256 });
  expect(c.maxBatch).toBeUndefined();
  expect(c.targetFpr).toBeUndefined();
});

test('values are read and checked, naming the variable', () => {
  const c = configFromEnv({ PORT: '0', ADVSIEVE_MAX_BATCH: '1', ADVSIEVE_TARGET_FPR: '0.01', ADVSIEVE_ATTACKS: 'off' });
  expect(c).toMatchObject({ port: 0, maxBatch: 1, targetFpr: 0.01, attacksEnabled: false });
  expect(() => configFromEnv({ PORT: 'http' })).toThrow(/PORT must be an integer ≥ 0; got 'http'/);
  expect(() => configFromEnv({ ADVSIEVE_TARGET_FPR: '1' })).toThrow(/ADVSIEVE_TARGET_FPR must be a number in \(0, 1\)/);
  expect(() => configFromEnv({ ADVSIEVE_MAX_QUEUE: '0' })).toThrow(/ADVSIEVE_MAX_QUEUE/);
  expect(() => configFromEnv({ ADVSIEVE_ATTACKS: 'maybe' })).toThrow(/ADVSIEVE_ATTACKS/);
});

test('production: attacks off, and switching them on is refused', () => {
  expect(configFromEnv({ NODE_ENV: 'production' })).toMatchObject({ production: true, attacksEnabled: false });
  expect(() => configFromEnv({ NODE_ENV: 'production', ADVSIEVE_ATTACKS: '1' })).toThrow(
    /off when NODE_ENV=production/,
  );
});

test('deadlines, admission, decoding and fault injection: defaults, checks, and no fault injection in production', () => {
  expect(configFromEnv({})).toMatchObject({
    requestTimeoutMs: 30_000,
    keepAliveTimeoutMs: 65_000,
    maxConcurrentRequests: 256,
    maxInflightBytes: 512 * 1024 * 1024,
    faultInjection: false,
  });
  expect(configFromEnv({ ADVSIEVE_MAX_INFLIGHT_BYTES: '65536' }).maxInflightBytes).toBe(65536);
  expect(() => configFromEnv({ ADVSIEVE_MAX_INFLIGHT_BYTES: '100' })).toThrow(/ADVSIEVE_MAX_INFLIGHT_BYTES/);
  expect(configFromEnv({}).decodeConcurrency).toBeGreaterThanOrEqual(1);
  expect(
    configFromEnv({
      ADVSIEVE_REQUEST_TIMEOUT_MS: '500',
      ADVSIEVE_MAX_CONCURRENT_REQUESTS: '3',
      ADVSIEVE_DECODE_CONCURRENCY: '2',
      ADVSIEVE_FAULT_INJECTION: '1',
    }),
  ).toMatchObject({ requestTimeoutMs: 500, maxConcurrentRequests: 3, decodeConcurrency: 2, faultInjection: true });
  expect(() => configFromEnv({ ADVSIEVE_REQUEST_TIMEOUT_MS: '0' })).toThrow(
    /ADVSIEVE_REQUEST_TIMEOUT_MS must be an integer ≥ 1/,
  );
  expect(configFromEnv({ ADVSIEVE_KEEP_ALIVE_TIMEOUT_MS: '120000' }).keepAliveTimeoutMs).toBe(120_000);
  expect(() => configFromEnv({ ADVSIEVE_KEEP_ALIVE_TIMEOUT_MS: '0' })).toThrow(/ADVSIEVE_KEEP_ALIVE_TIMEOUT_MS/);
  expect(() => configFromEnv({ ADVSIEVE_DECODE_CONCURRENCY: 'many' })).toThrow(/ADVSIEVE_DECODE_CONCURRENCY/);
  expect(() => configFromEnv({ NODE_ENV: 'production', ADVSIEVE_FAULT_INJECTION: '1' })).toThrow(
    /ADVSIEVE_FAULT_INJECTION must be off when NODE_ENV=production/,
  );
});

test('connection limits: from the open-file limit by default, set or switched off per address, checked', () => {
  // A fifth of the descriptors (at least 256) left to the process, at most 16 384; a quarter per address, at most 1 024.
  expect(connectionLimits({}, 1024)).toEqual({ maxConnections: 768, maxConnectionsPerAddress: 192 });
  expect(connectionLimits({}, 20_000)).toEqual({ maxConnections: 16_000, maxConnectionsPerAddress: 1024 });
  expect(connectionLimits({}, 1_048_576)).toEqual({ maxConnections: 16_384, maxConnectionsPerAddress: 1024 });
  expect(connectionLimits({}, 100)).toEqual({ maxConnections: 64, maxConnectionsPerAddress: 16 });
  expect(connectionLimits({ ADVSIEVE_MAX_CONNECTIONS: '100' }, 20_000)).toEqual({
    maxConnections: 100,
    maxConnectionsPerAddress: 25,
  });
  // 0: no cap per address (behind a balancer); a cap above the total is the total.
  expect(connectionLimits({ ADVSIEVE_MAX_CONNECTIONS_PER_ADDRESS: '0' }, 20_000).maxConnectionsPerAddress).toBe(0);
  expect(
    connectionLimits({ ADVSIEVE_MAX_CONNECTIONS: '10', ADVSIEVE_MAX_CONNECTIONS_PER_ADDRESS: '50' }, 20_000)
      .maxConnectionsPerAddress,
  ).toBe(10);
  expect(() => configFromEnv({ ADVSIEVE_MAX_CONNECTIONS: '0' })).toThrow(
    /ADVSIEVE_MAX_CONNECTIONS must be an integer ≥ 1/,
  );
  expect(() => configFromEnv({ ADVSIEVE_MAX_CONNECTIONS_PER_ADDRESS: '-1' })).toThrow(
    /ADVSIEVE_MAX_CONNECTIONS_PER_ADDRESS must be an integer ≥ 0/,
  );
  expect(configFromEnv({}).maxConnections).toBe(connectionLimits({}).maxConnections);
});

test('the open-file limit is read from /proc/self/limits, unlimited included', () => {
  const limits = (v: string) =>
    `Limit                     Soft Limit           Hard Limit           Units\nMax open files            ${v}                20000                files\n`;
  expect(openFileLimit(limits('20000'))).toBe(20_000);
  expect(openFileLimit(limits('unlimited'))).toBe(Number.MAX_SAFE_INTEGER);
  expect(openFileLimit('nothing here')).toBe(1024);
  expect(openFileLimit()).toBeGreaterThan(0);
});
