/** The audit log's settings from the environment: defaults, checked values, naming the variable. */
import * as path from 'path';
import { configFromEnv } from '../../src/server/config';
import { PACKAGE_ROOT } from '../../src/util/paths';

test('defaults: SQLite under data/, synced to disk, 90 days, no images, PostgreSQL pool of 4, 5 s per commit', () => {
  expect(configFromEnv({}).audit).toEqual({
    enabled: true,
    sqliteFile: path.join(PACKAGE_ROOT, 'data', 'audit.sqlite'),
    databaseUrl: undefined,
    sync: 'full',
    retentionDays: 90,
    storeImages: false,
    poolSize: 4,
    timeoutMs: 5000,
    maxWaitingRows: 10_000,
    maxWaitingBytes: 256 * 1024 * 1024,
  });
});

test('values are read and checked, naming the variable', () => {
  expect(
    configFromEnv({
      ADVSIEVE_AUDIT: 'off',
      ADVSIEVE_AUDIT_DB: 'rel/audit.db',
      DATABASE_URL: 'postgresql://u@h/db',
      ADVSIEVE_AUDIT_SYNC: 'NORMAL',
      ADVSIEVE_AUDIT_RETENTION_DAYS: '0',
      ADVSIEVE_AUDIT_STORE_IMAGES: '1',
      ADVSIEVE_AUDIT_PG_POOL: '2',
      ADVSIEVE_AUDIT_TIMEOUT_MS: '750',
      ADVSIEVE_AUDIT_MAX_WAITING_ROWS: '64',
      ADVSIEVE_AUDIT_MAX_WAITING_BYTES: '1048576',
    }).audit,
  ).toEqual({
    enabled: false,
    sqliteFile: path.resolve('rel/audit.db'),
    databaseUrl: 'postgresql://u@h/db',
    sync: 'normal',
    retentionDays: undefined, // 0: keep forever
    storeImages: true,
    poolSize: 2,
    timeoutMs: 750,
    maxWaitingRows: 64,
    maxWaitingBytes: 1048576,
  });
  expect(() => configFromEnv({ ADVSIEVE_AUDIT_SYNC: 'off' })).toThrow(/ADVSIEVE_AUDIT_SYNC must be 'full' or 'normal'/);
  expect(() => configFromEnv({ ADVSIEVE_AUDIT_RETENTION_DAYS: '-1' })).toThrow(/ADVSIEVE_AUDIT_RETENTION_DAYS/);
  expect(() => configFromEnv({ ADVSIEVE_AUDIT: 'maybe' })).toThrow(/ADVSIEVE_AUDIT must be/);
  expect(() => configFromEnv({ ADVSIEVE_AUDIT_PG_POOL: '0' })).toThrow(/ADVSIEVE_AUDIT_PG_POOL/);
  expect(() => configFromEnv({ ADVSIEVE_AUDIT_TIMEOUT_MS: '0' })).toThrow(
    /ADVSIEVE_AUDIT_TIMEOUT_MS must be an integer ≥ 1/,
  );
  expect(() => configFromEnv({ ADVSIEVE_AUDIT_MAX_WAITING_ROWS: 'many' })).toThrow(/ADVSIEVE_AUDIT_MAX_WAITING_ROWS/);
  expect(() => configFromEnv({ ADVSIEVE_AUDIT_MAX_WAITING_BYTES: '-1' })).toThrow(/ADVSIEVE_AUDIT_MAX_WAITING_BYTES/);
});
