/**
 * Items 8 and 9 of issue 11 in the audit log: the oracles' rows (classify, defend, spectrum,
 * trajectory), the client's request id beside the server's, and version 2 of the schema applied to
 * a version-1 database that already holds rows.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { auditRecords, JudgingModel, JudgingService } from '../../src/audit/records';
import Database from 'better-sqlite3';
import { MIGRATIONS, SCHEMA_MIGRATIONS_TABLE } from '../../src/audit/migrations';
import { SqliteAuditLog } from '../../src/audit/sqlite';
import type { AuditLog } from '../../src/audit/auditLog';

const service = {
  audit: {} as AuditLog,
  config: { audit: { storeImages: false }, requestTimeoutMs: 1000 },
} satisfies JudgingService;
const judge = {
  metadata: { id: 'fashion-cnn' },
  sha256: 'm'.repeat(64),
  calibrationSha256: 'c'.repeat(64),
  calibration: { createdAt: '2026-11-01T00:00:00.000Z' },
} satisfies JudgingModel;
const ctx = {
  service,
  principal: { keyId: 'k', scopes: new Set(['oracle'] as const) },
  requestId: 'uuid-1',
  clientRequestId: 'mine',
};
const p = (classIndex: number) => ({ classIndex, label: `L${classIndex}`, confidence: 0.5 });
const sha = 'a'.repeat(64);

test('oracle rows: the prediction without detection; defend’s filtered prediction; spectrum’s image only', () => {
  const [classify] = auditRecords(
    ctx,
    judge,
    'classify',
    [{ sha256: sha, bytes: 10 }],
    [{ index: 0, sha256: sha, prediction: p(3) }],
  );
  expect(classify).toMatchObject({
    operation: 'classify',
    requestId: 'uuid-1',
    clientRequestId: 'mine',
    keyId: 'k',
    classIndex: 3,
    label: 'L3',
    adversarial: null,
    score: null,
    threshold: null,
    targetFpr: null,
    detectors: null,
    defenseClassIndex: null,
  });
  const [defend] = auditRecords(
    ctx,
    judge,
    'defend',
    [{}],
    [{ index: 0, sha256: sha, prediction: p(1), defense: { prediction: p(2) } }],
  );
  expect(defend).toMatchObject({ classIndex: 1, defenseClassIndex: 2, adversarial: null });
  const [spectrum] = auditRecords(ctx, judge, 'spectrum', [{ sha256: sha, bytes: 9 }], [{ index: 0, sha256: sha }]);
  expect(spectrum).toMatchObject({
    operation: 'spectrum',
    sha256: sha,
    byteSize: 9,
    classIndex: null,
    errorCode: null,
  });
  const [failed] = auditRecords(ctx, judge, 'classify', [{}], [{ index: 0, error: { code: 'CORRUPT_IMAGE' } }]);
  expect(failed).toMatchObject({ classIndex: null, errorCode: 'CORRUPT_IMAGE' });
  const [anonymous] = auditRecords({ ...ctx, clientRequestId: undefined }, judge, 'screen', [{}], [{ index: 0 }]);
  expect(anonymous.clientRequestId).toBeNull();
});

test('SQLite: version 2 on a version-1 log keeps its rows; the client id and the operation filter work', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-oracle-audit-'));
  const file = path.join(dir, 'audit.sqlite');
  try {
    // A version-1 log with a row, as version-1 code made and wrote it (no client_request_id column yet).
    const v1 = new Database(file);
    v1.exec(SCHEMA_MIGRATIONS_TABLE.sqlite);
    v1.exec(MIGRATIONS[0].sql.sqlite);
    v1.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, 'screenings', 'then')").run();
    v1.prepare(
      `INSERT INTO screenings (time, request_id, key_id, operation, image_index, model_id, model_sha256,
       calibration_sha256, calibration_created_at) VALUES (?, 'old-client-id', NULL, 'screen', 0, 'm', 'x', 'y', 'z')`,
    ).run(Date.now());
    v1.close();
    const log = SqliteAuditLog.open({ file, sync: 'normal' });
    expect(log.appliedVersions()).toEqual(MIGRATIONS.map((m) => m.version));
    await log.record([
      ...auditRecords(ctx, judge, 'classify', [{ sha256: sha }], [{ index: 0, sha256: sha, prediction: p(3) }]),
      ...auditRecords(ctx, judge, 'spectrum', [{ sha256: sha }], [{ index: 0, sha256: sha }]),
    ]);
    const all = await log.screenings({ filter: {}, first: 10 });
    expect(all.rows.map((r) => [r.operation, r.requestId, r.clientRequestId])).toEqual([
      ['spectrum', 'uuid-1', 'mine'],
      ['classify', 'uuid-1', 'mine'],
      ['screen', 'old-client-id', null],
    ]);
    const spectra = await log.screenings({ filter: { operation: 'spectrum' }, first: 10 });
    expect(spectra.rows.map((r) => r.operation)).toEqual(['spectrum']);
    expect(await log.count({ operation: 'classify' })).toBe(1);
    await log.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
