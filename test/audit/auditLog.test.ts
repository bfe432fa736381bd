/**
 * The audit log's behaviour, one suite run against both backends (SQLite in a temporary file, and
 * PostgreSQL on a throwaway server of its own — these fail, not skip, without Debian's `postgresql`
 * package): every field read back as written, concurrent records in one group, the filters, cursor
 * pagination while rows arrive, retention, versioned migrations, start-up failures that say why.
 */
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { Client } from 'pg';
import type { AuditLog, AuditRecord } from '../../src/audit/auditLog';
import { CommitLimits, CommitTimeoutError, WaitingFullError } from '../../src/audit/groupCommit';
import { Migration, MIGRATIONS, pendingMigrations } from '../../src/audit/migrations';
import { openAuditLog } from '../../src/audit/openAuditLog';
import { PostgresAuditLog } from '../../src/audit/postgres';
import { auditRecords, recordVerdicts } from '../../src/audit/records';
import { SqliteAuditLog } from '../../src/audit/sqlite';
import { decodeCursor, encodeCursor } from '../../src/server/screenings';
import { expectLogs } from '../helpers/expectedLogs';
import { PostgresServer, startPostgres } from './postgresServer';

type Opened = AuditLog & { appliedVersions(): number[] | Promise<number[]> };

interface Backend {
  readonly name: 'sqlite' | 'postgres';
  /** Opens the log called `db` (the same name reopens the same database). */
  open(db: string, migrations?: readonly Migration[], limits?: Partial<CommitLimits>): Promise<Opened>;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-audit-'));
let postgres: PostgresServer | undefined;
const databases = new Map<string, string>();

const sqlite: Backend = {
  name: 'sqlite',
  open: async (db, migrations, limits) =>
    SqliteAuditLog.open({ file: path.join(tmp, `${db}.sqlite`), sync: 'full', migrations, limits }),
};

const pg: Backend = {
  name: 'postgres',
  async open(db, migrations, limits) {
    postgres ??= await startPostgres();
    if (!databases.has(db)) databases.set(db, await postgres.createDatabase(db));
    return PostgresAuditLog.open({ url: databases.get(db)!, poolSize: 4, migrations, limits });
  },
};

afterAll(async () => {
  await postgres?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const outcome = (p: Promise<void>) =>
  p.then(
    () => 'ok' as const,
    (err: Error) => err,
  );

const T0 = new Date('2026-11-20T10:00:00.123Z');
const minutes = (n: number) => new Date(T0.getTime() + n * 60_000);
const hex = (n: number) => n.toString(16).padStart(64, '0');

function record(overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    time: T0,
    requestId: 'req-1',
    clientRequestId: null, // with one, identical records are a retry's, recorded once (a test below)
    keyId: 'key-a',
    operation: 'screen',
    imageIndex: 0,
    sha256: hex(1),
    byteSize: 345,
    classIndex: 1,
    label: 'Trouser',
    confidence: 0.987654321,
    adversarial: false,
    score: -1.25,
    threshold: 1.5,
    targetFpr: 0.05,
    detectors: [
      { name: 'highFrequency', score: 0.5, threshold: 2.25, flagged: false },
      { name: 'mahalanobis', score: 3.125, threshold: 2, flagged: true },
    ],
    defenseClassIndex: null,
    defenseLabel: null,
    defenseConfidence: null,
    errorCode: null,
    modelId: 'fashion-cnn',
    modelSha256: hex(0xabc),
    calibrationSha256: hex(0xdef),
    calibrationCreatedAt: '2026-11-01T00:00:00.000Z',
    image: null,
    jobId: null,
    ...overrides,
  };
}

let dbCounter = 0;
const fresh = () => `audit_${++dbCounter}`;

describe.each([sqlite, pg])('$name audit log', (backend) => {
  let log: Opened | undefined;
  afterEach(async () => {
    await log?.close();
    log = undefined;
  });

  test("a job's image is recorded once however often its batch reruns; requests' rows never conflict", async () => {
    log = await backend.open(fresh());
    const job = (imageIndex: number, requestId: string) => record({ jobId: 'job-1', imageIndex, requestId });
    await log.record([job(0, 'run-1'), job(1, 'run-1'), record(), record()]);
    // A rerun of the batch after a stalled consumer: the same images again, and one new.
    await log.record([job(1, 'run-2'), job(0, 'run-2'), job(2, 'run-2')]);
    const rows = (await log.screenings({ filter: { jobId: 'job-1' }, first: 10 })).rows;
    expect(rows.map((r) => [r.imageIndex, r.requestId]).sort()).toEqual([
      [0, 'run-1'],
      [1, 'run-1'],
      [2, 'run-2'],
    ]);
    expect(await log.count({})).toBe(5); // the two request rows of index 0 both kept
    expect(await log.count({ jobId: 'job-2' })).toBe(0);
  });

  test('a record reads back with every field as written, a failed image with nulls', async () => {
    log = await backend.open(fresh());
    const full = record({
      clientRequestId: 'client-req-1',
      defenseClassIndex: 3,
      defenseLabel: 'Dress',
      defenseConfidence: 0.5,
      adversarial: true,
      image: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 255]),
    });
    const failed = record({
      imageIndex: 1,
      sha256: null,
      byteSize: null,
      classIndex: null,
      label: null,
      confidence: null,
      adversarial: null,
      score: null,
      threshold: null,
      targetFpr: null,
      detectors: null,
      errorCode: 'INVALID_BASE64',
      keyId: null,
    });
    await log.record([full, failed]);
    const page = await log.screenings({ filter: {}, first: 10 });
    expect(page.hasNextPage).toBe(false);
    expect(page.rows).toHaveLength(2);
    const [second, first] = page.rows; // newest first
    expect(second.id).toBeGreaterThan(first.id);
    expect(first).toEqual({ ...full, id: first.id });
    expect(second).toEqual({ ...failed, id: second.id });
    expect(first.time.getTime()).toBe(T0.getTime());
    expect(await log.count({})).toBe(2);
  });

  test('a retry of a request (same key, x-request-id, image, model) is recorded once; anything else is not merged', async () => {
    log = await backend.open(fresh());
    const attempt = (requestId: string, overrides: Partial<AuditRecord> = {}) => [
      record({ requestId, clientRequestId: 'retry-me', imageIndex: 0, sha256: hex(1), ...overrides }),
      record({ requestId, clientRequestId: 'retry-me', imageIndex: 1, sha256: hex(2), ...overrides }),
    ];
    await log.record(attempt('server-uuid-1'));
    // The retry, on another replica: its rows are skipped, in one group with a new row and alone.
    await Promise.all([log.record(attempt('server-uuid-2')), log.record([record({ requestId: 'other' })])]);
    await log.record(attempt('server-uuid-3'));
    // Not a retry: another key, another client request id, another image at the index, another target.
    await log.record(attempt('k', { keyId: 'key-b' }));
    await log.record(attempt('c', { clientRequestId: 'another' }));
    await log.record([record({ requestId: 'i', clientRequestId: 'retry-me', imageIndex: 0, sha256: hex(9) })]);
    await log.record([
      record({ requestId: 't', clientRequestId: 'retry-me', imageIndex: 0, sha256: hex(1), targetFpr: 0.01 }),
    ]);
    // Without a client request id every row stands on its own.
    await log.record([record({ requestId: 'n1' }), record({ requestId: 'n2' })]);
    const rows = (await log.screenings({ filter: {}, first: 100 })).rows;
    const ids = rows.map((r) => `${r.requestId}/${r.imageIndex}`).sort();
    expect(ids).toEqual(
      [
        'server-uuid-1/0',
        'server-uuid-1/1',
        'other/0',
        'k/0',
        'k/1',
        'c/0',
        'c/1',
        'i/0',
        't/0',
        'n1/0',
        'n2/0',
      ].sort(),
    );
  });

  test('concurrent records all commit (as groups), each promise resolving once its rows are readable', async () => {
    log = await backend.open(fresh());
    const l = log;
    const writes = Array.from({ length: 60 }, (_, i) =>
      l.record([record({ requestId: `r${i}`, imageIndex: 0 }), record({ requestId: `r${i}`, imageIndex: 1 })]),
    );
    // Each promise resolves only after its rows are committed: read as soon as the first resolves.
    await writes[0];
    expect(await l.count({})).toBeGreaterThanOrEqual(2);
    await Promise.all(writes);
    const page = await l.screenings({ filter: {}, first: 500 });
    expect(page.rows).toHaveLength(120);
    expect(new Set(page.rows.map((r) => `${r.requestId}/${r.imageIndex}`)).size).toBe(120);
  });

  test('filters: flagged, since (inclusive), until (exclusive), sha256, together', async () => {
    log = await backend.open(fresh());
    await log.record([
      record({ time: minutes(0), adversarial: true, sha256: hex(1) }),
      record({ time: minutes(1), adversarial: false, sha256: hex(2) }),
      record({ time: minutes(2), adversarial: true, sha256: hex(2) }),
      record({ time: minutes(3), adversarial: null, sha256: null, errorCode: 'CORRUPT_IMAGE' }),
    ]);
    const times = async (filter: Parameters<AuditLog['count']>[0]) =>
      (await log!.screenings({ filter, first: 50 })).rows.map((r) => (r.time.getTime() - T0.getTime()) / 60_000);
    expect(await times({})).toEqual([3, 2, 1, 0]);
    expect(await times({ flagged: true })).toEqual([2, 0]);
    expect(await times({ flagged: false })).toEqual([1]);
    expect(await times({ since: minutes(1) })).toEqual([3, 2, 1]);
    expect(await times({ until: minutes(2) })).toEqual([1, 0]);
    expect(await times({ since: minutes(1), until: minutes(3) })).toEqual([2, 1]);
    expect(await times({ sha256: hex(2) })).toEqual([2, 1]);
    expect(await times({ sha256: hex(2), flagged: true, since: minutes(2) })).toEqual([2]);
    expect(await log.count({ sha256: hex(2) })).toBe(2);
    expect(await log.count({ flagged: true, until: minutes(1) })).toBe(1);
  });

  test('pages by cursor: every row once, newest first, while new rows arrive between pages', async () => {
    log = await backend.open(fresh());
    await log.record(Array.from({ length: 23 }, (_, i) => record({ requestId: `old-${i}`, time: minutes(i) })));
    const seen: string[] = [];
    let afterId: number | undefined;
    let pages = 0;
    for (;;) {
      const page = await log.screenings({ filter: {}, first: 5, afterId });
      seen.push(...page.rows.map((r) => r.requestId));
      pages++;
      // Rows arriving mid-way are newer than anything paged so far: they must not show up later.
      await log.record([record({ requestId: `new-${pages}`, time: minutes(100 + pages) })]);
      if (!page.hasNextPage) break;
      afterId = page.rows[page.rows.length - 1].id;
    }
    expect(pages).toBe(5);
    expect(seen).toEqual(Array.from({ length: 23 }, (_, i) => `old-${22 - i}`));
    // A filtered walk: the flagged rows only, 2 per page.
    await log.record([record({ requestId: 'f1', adversarial: true }), record({ requestId: 'f2', adversarial: true })]);
    await log.record([record({ requestId: 'f3', adversarial: true })]);
    const p1 = await log.screenings({ filter: { flagged: true }, first: 2 });
    const p2 = await log.screenings({ filter: { flagged: true }, first: 2, afterId: p1.rows[1].id });
    expect([...p1.rows, ...p2.rows].map((r) => r.requestId)).toEqual(['f3', 'f2', 'f1']);
    expect([p1.hasNextPage, p2.hasNextPage]).toEqual([true, false]);
  });

  test('prune deletes the rows older than the cut-off and nothing else', async () => {
    log = await backend.open(fresh());
    await log.record([
      record({ requestId: 'old', time: new Date(Date.now() - 10 * 86_400_000) }),
      record({ requestId: 'older', time: new Date(Date.now() - 40 * 86_400_000) }),
      record({ requestId: 'recent', time: new Date(Date.now() - 3_600_000) }),
    ]);
    expect(await log.prune(new Date(Date.now() - 7 * 86_400_000))).toBe(2);
    expect((await log.screenings({ filter: {}, first: 10 })).rows.map((r) => r.requestId)).toEqual(['recent']);
    expect(await log.prune(new Date(Date.now() - 7 * 86_400_000))).toBe(0);
  });

  test('migrations: applied once and recorded; reopening applies nothing; a newer database is refused', async () => {
    const db = fresh();
    log = await backend.open(db);
    expect(await log.appliedVersions()).toEqual(MIGRATIONS.map((m) => m.version));
    await log.record([record()]);
    await log.close();
    log = await backend.open(db);
    expect(await log.appliedVersions()).toEqual(MIGRATIONS.map((m) => m.version));
    expect(await log.count({})).toBe(1); // reopening kept the data
    await log.close();
    // A later version: applied on top, in order, once.
    const latest = MIGRATIONS[MIGRATIONS.length - 1].version;
    const next: Migration = {
      version: latest + 1,
      name: 'test_extra',
      sql: { sqlite: 'CREATE TABLE test_extra (x INTEGER)', postgres: 'CREATE TABLE test_extra (x INTEGER)' },
    };
    const all = [...MIGRATIONS, next].map((m) => m.version);
    log = await backend.open(db, [...MIGRATIONS, next]);
    expect(await log.appliedVersions()).toEqual(all);
    await log.close();
    log = await backend.open(db, [...MIGRATIONS, next]);
    expect(await log.appliedVersions()).toEqual(all);
    await log.close();
    log = undefined;
    // This code (without the next version) must not write into a database that a newer one migrated.
    await expect(backend.open(db)).rejects.toThrow(/schema version \d+, which this advsieve does not know/);
  });

  test('records after close are refused; close waits for the records being written', async () => {
    log = await backend.open(fresh());
    const l = log;
    const pending = l.record([record()]);
    await l.close();
    await expect(pending).resolves.toBeUndefined();
    await expect(l.record([record()])).rejects.toThrow(/closed/);
    log = await backend.open(`audit_${dbCounter}`);
    expect(await log.count({})).toBe(1);
  });

  test('a record the database refuses fails alone; the records grouped with it commit', async () => {
    log = await backend.open(fresh());
    const l = log;
    const results = await Promise.all(
      [
        l.record([record({ requestId: 'good-1' })]),
        l.record([record({ requestId: null as unknown as string })]), // request_id is NOT NULL
        l.record([record({ requestId: 'good-2' }), record({ requestId: 'good-2', imageIndex: 1 })]),
      ].map(outcome),
    );
    expect(results[0]).toBe('ok');
    expect(results[1]).toBeInstanceOf(Error);
    expect(results[2]).toBe('ok');
    const rows = (await l.screenings({ filter: {}, first: 10 })).rows;
    expect(rows.map((r) => `${r.requestId}/${r.imageIndex}`).sort()).toEqual(['good-1/0', 'good-2/0', 'good-2/1']);
  });

  test('count stops at its limit, so that totalCount stays cheap on a large log', async () => {
    log = await backend.open(fresh());
    await log.record(Array.from({ length: 7 }, (_, i) => record({ imageIndex: i, adversarial: i < 5 })));
    expect(await log.count({}, 3)).toBe(3);
    expect(await log.count({}, 100)).toBe(7);
    expect(await log.count({}, 7)).toBe(7);
    expect(await log.count({ flagged: true }, 4)).toBe(4);
    expect(await log.count({ flagged: false }, 4)).toBe(2);
  });

  test('with the waiting list full, a record is refused at once instead of queued', async () => {
    log = await backend.open(fresh(), undefined, { maxWaitingRows: 3 });
    const l = log;
    // One turn of the event loop: 3 rows wait for the first commit, a fourth does not fit.
    const results = await Promise.all(
      [
        l.record([record(), record({ imageIndex: 1 })]),
        l.record([record({ requestId: 'w1' })]),
        l.record([record({ requestId: 'refused' })]),
      ].map(outcome),
    );
    expect(results.slice(0, 2)).toEqual(['ok', 'ok']);
    expect((results[2] as Error).message).toMatch(/waiting/);
    expect(await l.count({})).toBe(3);
  });
});

describe('start-up failures say which backend, where and why', () => {
  test('SQLite: a file that cannot be created', () => {
    const blocker = path.join(tmp, 'not-a-directory');
    fs.writeFileSync(blocker, 'x');
    expect(() => SqliteAuditLog.open({ file: path.join(blocker, 'audit.sqlite'), sync: 'full' })).toThrow(
      /audit log: cannot open the SQLite file .*not-a-directory\/audit\.sqlite \(ADVSIEVE_AUDIT_DB\): .*(ENOTDIR|EEXIST)/i,
    );
  });

  test('PostgreSQL: a server that does not answer; the password is not shown', async () => {
    await expect(
      PostgresAuditLog.open({
        url: 'postgresql://advsieve:s3cret@127.0.0.1:1/audit',
        poolSize: 1,
        connectTimeoutMs: 2000,
      }),
    ).rejects.toThrow(
      /audit log: cannot use PostgreSQL at postgresql:\/\/advsieve:\*\*\*@127\.0\.0\.1:1\/audit \(DATABASE_URL\): .*ECONNREFUSED/,
    );
  });
});

/** A TCP proxy to PostgreSQL whose open connections can be frozen: they stay open and carry nothing, as behind a dead peer. */
async function freezableProxy(target: string) {
  const to = new URL(target);
  const pairs: Array<{ frozen: boolean }> = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(to.port), to.hostname);
    const pair = { frozen: false };
    pairs.push(pair);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => (client.destroy(), upstream.destroy()));
    }
    client.on('data', (d) => pair.frozen || upstream.write(d));
    upstream.on('data', (d) => pair.frozen || client.write(d));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.port = String((server.address() as net.AddressInfo).port);
  return {
    url: url.toString(),
    /** Freezes the connections open now; new ones pass. */
    freeze: () => pairs.forEach((p) => (p.frozen = true)),
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

describe('PostgreSQL that hangs: records fail at the audit timeout, unacknowledged, and the log recovers', () => {
  test('an INSERT blocked by a lock is cancelled by the server (statement_timeout): failed and not recorded', async () => {
    postgres ??= await startPostgres();
    const url = await postgres.createDatabase(fresh());
    const log = await PostgresAuditLog.open({ url, poolSize: 2, limits: { timeoutMs: 300 } });
    const locker = new Client({ connectionString: url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE screenings IN ACCESS EXCLUSIVE MODE');
      const started = performance.now();
      const blocked = await outcome(log.record([record({ requestId: 'blocked' })]));
      // Both limits are 300 ms: the record's own, or the server cancelling the statement, comes first.
      expect((blocked as Error).message).toMatch(/timed out|canceling statement due to statement timeout/);
      expect(performance.now() - started).toBeLessThan(2000);
      await sleep(800); // the server has cancelled the INSERT by now, though the lock is still held
      await locker.query('COMMIT');
      await log.record([record({ requestId: 'after' })]);
      expect((await log.screenings({ filter: {}, first: 10 })).rows.map((r) => r.requestId)).toEqual(['after']);
    } finally {
      await locker.end();
      await log.close();
    }
  });

  test('a connection that stops answering fails its record at the timeout; the pool drops it and goes on', async () => {
    postgres ??= await startPostgres();
    const proxy = await freezableProxy(await postgres.createDatabase(fresh()));
    const log = await PostgresAuditLog.open({ url: proxy.url, poolSize: 1, limits: { timeoutMs: 300 } });
    try {
      await log.record([record({ requestId: 'before' })]);
      proxy.freeze();
      const started = performance.now();
      expect(await outcome(log.record([record({ requestId: 'frozen' })]))).toBeInstanceOf(CommitTimeoutError);
      expect(performance.now() - started).toBeLessThan(2000);
      // The write gives up on the frozen connection itself (query_timeout), so the next group is
      // not held back for ever: a record made a little later commits on a new connection.
      await sleep(1500);
      await log.record([record({ requestId: 'after' })]);
      const ids = (await log.screenings({ filter: {}, first: 10 })).rows.map((r) => r.requestId);
      expect(ids.filter((id) => id !== 'frozen')).toEqual(['after', 'before']);
    } finally {
      const closing = performance.now();
      await log.close();
      expect(performance.now() - closing).toBeLessThan(3000);
      proxy.close();
    }
  });
});

test('SQLite full: opening syncs the file and its directory (the new entries of the file and its WAL)', async () => {
  const realFs = require('fs') as typeof fs;
  const real = realFs.fsyncSync;
  const synced: string[] = [];
  const spy = jest.spyOn(realFs, 'fsyncSync').mockImplementation((fd) => {
    synced.push(realFs.readlinkSync(`/proc/self/fd/${fd}`));
    real(fd);
  });
  const dir = path.join(tmp, 'dirsync');
  try {
    const log = SqliteAuditLog.open({ file: path.join(dir, 'audit.sqlite'), sync: 'full' });
    await log.record([record()]);
    await log.close();
  } finally {
    spy.mockRestore();
  }
  expect(synced).toEqual(expect.arrayContaining([dir, path.join(dir, 'audit.sqlite')]));
  expect(synced.filter((p) => p === dir)).toHaveLength(1);
});

describe('retention, group commit and records', () => {
  test('openAuditLog prunes past the retention period at start; off records nothing', async () => {
    const file = path.join(tmp, 'retention.sqlite');
    const first = SqliteAuditLog.open({ file, sync: 'normal' });
    await first.record([
      record({ requestId: 'expired', time: new Date(Date.now() - 3 * 86_400_000) }),
      record({ requestId: 'kept', time: new Date(Date.now() - 3_600_000) }),
    ]);
    await first.close();
    const config = {
      enabled: true,
      sqliteFile: file,
      databaseUrl: undefined,
      sync: 'normal' as const,
      retentionDays: 2,
      storeImages: false,
      poolSize: 1,
      timeoutMs: 5000,
      maxWaitingRows: 100,
      maxWaitingBytes: 1 << 20,
    };
    const log = await openAuditLog(config);
    expect(log.kind).toBe('sqlite');
    expect((await log.screenings({ filter: {}, first: 10 })).rows.map((r) => r.requestId)).toEqual(['kept']);
    await log.close();
    const off = await openAuditLog({ ...config, enabled: false });
    expect(off.kind).toBe('off');
    await expect(off.record([record()])).resolves.toBeUndefined();
    await expect(off.screenings({ filter: {}, first: 1 })).rejects.toThrow(/ADVSIEVE_AUDIT=off/);
  });

  test("recordVerdicts: passes the request's deadline; a failed, refused or timed-out record is AUDIT_UNAVAILABLE, past the deadline DEADLINE_EXCEEDED", async () => {
    const deadlines: Array<number | undefined> = [];
    let failure: Error | undefined;
    const service = {
      config: { audit: { storeImages: false }, requestTimeoutMs: 30_000 },
      audit: {
        kind: 'sqlite',
        async record(_rows: unknown, options?: { deadline?: number }) {
          deadlines.push(options?.deadline);
          if (failure) throw failure;
        },
      },
    } as never;
    const ctx = { service, principal: undefined, requestId: 'rid', deadline: 12_345 };
    const judge = {
      metadata: { id: 'fashion-cnn' },
      sha256: hex(7),
      calibrationSha256: hex(8),
      calibration: { createdAt: '2026-01-01T00:00:00Z' },
    };
    const results = [{ index: 0, sha256: hex(1), error: { code: 'CORRUPT_IMAGE', message: 'bad' } }];
    const codeOf = (p: Promise<void>) =>
      p.then(
        () => 'ok',
        (e: { extensions?: { code?: string; http?: { status?: number } } }) =>
          `${e.extensions?.code} ${e.extensions?.http?.status}`,
      );
    expect(await codeOf(recordVerdicts(ctx, judge, 'screen', [{}], results))).toBe('ok');
    expect(deadlines).toEqual([12_345]);
    // Each injected failure is logged as an error: held here and counted, not printed as if it were real.
    const logs = expectLogs([/audit log \(sqlite\) write failed/]);
    try {
      for (const [err, expected] of [
        [new Error('disk I/O error'), 'AUDIT_UNAVAILABLE 503'],
        [new WaitingFullError(10_000, 0), 'AUDIT_UNAVAILABLE 503'],
        [new CommitTimeoutError(false, 5000), 'AUDIT_UNAVAILABLE 503'],
        [new CommitTimeoutError(true, 20), 'DEADLINE_EXCEEDED 504'],
      ] as const) {
        failure = err;
        expect(await codeOf(recordVerdicts(ctx, judge, 'screen', [{}], results))).toBe(expected);
      }
      expect(logs.held).toHaveLength(4);
    } finally {
      logs.restore();
    }
  });

  test('auditRecords: one per result, the verdict and versions; image bytes only when configured', () => {
    const service = (storeImages: boolean) =>
      ({
        config: { audit: { storeImages } },
      }) as never;
    const judge = {
      metadata: { id: 'fashion-cnn' },
      sha256: hex(7),
      calibrationSha256: hex(8),
      calibration: { createdAt: '2026-01-01T00:00:00Z' },
    };
    const detection = {
      adversarial: true,
      score: 2,
      threshold: 1,
      targetFpr: 0.05,
      detectors: [{ name: 'highFrequency', score: 3, threshold: 2, flagged: true }],
    };
    const prediction = { classIndex: 1, label: 'Trouser', confidence: 0.9, top: [] };
    const results = [
      { index: 0, sha256: hex(1), prediction, detection },
      { index: 1, sha256: hex(2), error: { code: 'CORRUPT_IMAGE', message: 'bad' } },
    ];
    const images = [
      { sha256: hex(1), bytes: 10, data: Buffer.from('0123456789') },
      { sha256: hex(2), bytes: 3, data: Buffer.from('bad') },
    ];
    const ctx = { service: service(false), principal: undefined, requestId: 'rid' };
    const rows = auditRecords(ctx, judge, 'screen', images, results);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({
      requestId: 'rid',
      keyId: null,
      imageIndex: 0,
      sha256: hex(1),
      byteSize: 10,
      classIndex: 1,
      adversarial: true,
      detectors: detection.detectors,
      errorCode: null,
      modelSha256: hex(7),
      calibrationSha256: hex(8),
      image: null,
      jobId: null,
    });
    expect(rows[1]).toMatchObject({ errorCode: 'CORRUPT_IMAGE', byteSize: 3, adversarial: null, classIndex: null });
    const stored = auditRecords({ ...ctx, service: service(true) }, judge, 'screen', images, results);
    expect(stored.map((r) => r.image?.toString())).toEqual(['0123456789', 'bad']);
  });

  test('cursors round-trip; anything else is not one', () => {
    expect(decodeCursor(encodeCursor(42))).toBe(42);
    for (const bad of ['', 'abc', encodeCursor(42) + '!', 'NDI=', Buffer.from('-1').toString('base64url'), 'MDQy'])
      expect(decodeCursor(bad)).toBeUndefined();
  });

  test('the migration list is ordered and a gap-free prefix is pending', () => {
    expect(pendingMigrations([])).toEqual(MIGRATIONS);
    expect(pendingMigrations(MIGRATIONS.map((m) => m.version))).toEqual([]);
    expect(pendingMigrations([1])).toEqual(MIGRATIONS.slice(1));
    const bad = [MIGRATIONS[0], { ...MIGRATIONS[0], version: 1 }];
    expect(() => pendingMigrations([], bad)).toThrow(/out of order/);
  });
});
