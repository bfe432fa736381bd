/**
 * Group commit: the records of every request that arrives while the log is idle for one turn of the
 * event loop (or while the previous commit is still in flight) are written in one transaction, and
 * all their promises settle after it commits. A commit's fixed cost — an fsync in SQLite with
 * synchronous=FULL, a round trip and a WAL flush in PostgreSQL — is then paid once per group, not
 * once per request, so under load the cost per image falls as the groups grow.
 *
 * One commit at a time: with SQLite a transaction is synchronous anyway, and with PostgreSQL it
 * keeps this process's ids in commit order (pagination relies on ids growing with time).
 *
 * Time limits. A record waits at most `timeoutMs` (ADVSIEVE_AUDIT_TIMEOUT_MS) for its commit, or
 * until its request's deadline when that comes first; then its promise rejects (CommitTimeoutError)
 * and its request fails. It stays failed even if the write lands afterwards: a verdict may be
 * recorded and never acknowledged, but never acknowledged and not recorded. A record that times out
 * while still waiting leaves the waiting list and is not written. The write itself is not
 * abandoned — the next group waits for it, since a second write beside a hung one would only tie up
 * a second thread (a stuck fdatasync) or connection; the backends bound their own writes
 * (PostgreSQL's statement_timeout and query_timeout), and meanwhile new records fail at their limits.
 *
 * Bounds. The records waiting hold at most `maxWaitingRows` rows and `maxWaitingBytes` bytes
 * (ADVSIEVE_AUDIT_MAX_WAITING_*); beyond, a record is refused at once (WaitingFullError) instead of
 * holding its request, and the request's memory, in a queue behind a stalled database. A group holds
 * at most `maxGroupRows` rows and `maxGroupBytes` bytes (a larger record is a group of its own), so
 * one commit never blocks SQLite's main thread, or builds a statement, without bound.
 *
 * Failures. A group whose write fails is written again record by record, so that a record the
 * database refuses (a constraint, a value it cannot store) fails its own request only. A
 * GroupWriteError says the store itself failed (its disk, its connection, a timeout): the group then
 * fails at once, since record by record would fail the same way, only slower — and after an fsync
 * error or a statement that timed out but may still commit, it could write records twice.
 */
import { performance } from 'perf_hooks';
import { logger } from '../util/logger';
import { AuditLogError } from './auditLog';

export interface CommitLimits {
  /** Longest a record waits for its commit (ms), from add(). */
  readonly timeoutMs: number;
  /** Rows and bytes (by `sizeOf`) waiting for a commit at most; a record beyond is refused. */
  readonly maxWaitingRows: number;
  readonly maxWaitingBytes: number;
  /** Rows and bytes written in one commit at most. */
  readonly maxGroupRows: number;
  readonly maxGroupBytes: number;
}

const MiB = 1024 * 1024;
/** Node fires a longer setTimeout at once (after 1 ms): a huge ADVSIEVE_AUDIT_TIMEOUT_MS means ≈ 24.8 days. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const DEFAULT_COMMIT_LIMITS: CommitLimits = {
  // A commit takes milliseconds (see docs/api.md, Cost); 5 s is a stalled disk or database, not load.
  timeoutMs: 5000,
  // About 16 s of the service's peak rate (≈ 600 images/s), far more than a healthy log ever queues.
  maxWaitingRows: 10_000,
  maxWaitingBytes: 256 * MiB,
  maxGroupRows: 1000,
  maxGroupBytes: 16 * MiB,
};

/** A record was not committed in time: not acknowledged, whatever happens to the write later. */
export class CommitTimeoutError extends Error {
  constructor(
    /** The request's deadline came before the audit timeout. */
    readonly byDeadline: boolean,
    readonly waitedMs: number,
  ) {
    super(
      byDeadline
        ? `the audit write timed out: not committed before the request's deadline (${Math.round(waitedMs)} ms)`
        : `the audit write timed out: not committed within ${waitedMs} ms (ADVSIEVE_AUDIT_TIMEOUT_MS)`,
    );
    this.name = 'CommitTimeoutError';
  }
}

/** Too much is waiting for a commit already: the record is refused, not queued. */
export class WaitingFullError extends Error {
  constructor(rows: number, bytes: number) {
    super(
      `${rows} rows (${(bytes / MiB).toFixed(1)} MiB) are waiting for the audit log already ` +
        '(ADVSIEVE_AUDIT_MAX_WAITING_ROWS, ADVSIEVE_AUDIT_MAX_WAITING_BYTES): refused',
    );
    this.name = 'WaitingFullError';
  }
}

/** Thrown by a write when the store failed as a whole, not one record: the group is not retried record by record. */
export class GroupWriteError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GroupWriteError';
  }
}

/** What a capped drain left unfinished: records whose write was still in flight, records never written. */
export interface Abandoned {
  readonly writing: { readonly records: number; readonly rows: number };
  readonly waiting: { readonly records: number; readonly rows: number };
}

interface Member<T> {
  readonly rows: readonly T[];
  readonly bytes: number;
  settled: boolean;
  timer?: NodeJS.Timeout;
  resolve(): void;
  reject(err: unknown): void;
}

export class GroupCommit<T> {
  readonly limits: CommitLimits;
  private waiting: Member<T>[] = [];
  private waitingRows = 0;
  private waitingBytes = 0;
  /** The group being written; its members may have timed out already. */
  private writing: Member<T>[] = [];
  private scheduled = false;
  private inFlight: Promise<void> | undefined;

  /**
   * `write` stores the rows in one transaction and returns (or resolves) once it has committed;
   * `sizeOf` is a row's size in memory, for the byte bounds.
   */
  constructor(
    private readonly write: (rows: readonly T[]) => void | Promise<void>,
    limits: Partial<CommitLimits> = {},
    private readonly sizeOf: (row: T) => number = () => 0,
  ) {
    this.limits = { ...DEFAULT_COMMIT_LIMITS, ...limits };
  }

  /** Resolves once the rows are committed; `deadline` (a performance.now() time) caps the wait below the timeout. */
  add(rows: readonly T[], deadline?: number): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    const bytes = rows.reduce((n, r) => n + this.sizeOf(r), 0);
    const { maxWaitingRows, maxWaitingBytes, timeoutMs } = this.limits;
    // Alone in the list a record is always taken, however large: it could never be accepted otherwise.
    if (
      this.waiting.length &&
      (this.waitingRows + rows.length > maxWaitingRows || this.waitingBytes + bytes > maxWaitingBytes)
    )
      return Promise.reject(new WaitingFullError(this.waitingRows, this.waitingBytes));
    const now = performance.now();
    const byDeadline = deadline !== undefined && deadline < now + timeoutMs;
    const waitMs = byDeadline ? deadline - now : timeoutMs;
    if (waitMs <= 0) return Promise.reject(new CommitTimeoutError(true, 0));
    return new Promise((resolve, reject) => {
      const member: Member<T> = { rows, bytes, settled: false, resolve, reject };
      const fail = () => this.timeOut(member, new CommitTimeoutError(byDeadline, waitMs));
      member.timer = setTimeout(fail, Math.min(waitMs, MAX_TIMER_MS));
      this.waiting.push(member);
      this.waitingRows += rows.length;
      this.waitingBytes += bytes;
      this.schedule();
    });
  }

  /**
   * Resolves once nothing is waiting or being written, or after `capMs`: then the records still
   * waiting or being written fail (never acknowledged), the log says how many, and so does the result.
   */
  async drain(capMs: number): Promise<Abandoned> {
    const cap = performance.now() + capMs;
    while (this.inFlight || this.waiting.length) {
      const left = cap - performance.now();
      if (left <= 0) break;
      await settledWithin(this.inFlight ?? new Promise((resolve) => setImmediate(resolve)), left);
    }
    const abandoned: Abandoned = {
      writing: { records: this.writing.length, rows: rowCount(this.writing) },
      waiting: { records: this.waiting.length, rows: this.waitingRows },
    };
    if (!this.inFlight && !this.waiting.length) return abandoned;
    const err = new AuditLogError('the audit log was closed before these records were committed');
    for (const m of [...this.writing, ...this.waiting]) this.fail(m, err);
    this.waiting = [];
    this.waitingRows = this.waitingBytes = 0;
    logger.warn(
      { abandoned, capMs },
      `audit log: closed after waiting ${capMs} ms for its writes; abandoned ${abandoned.writing.records} records ` +
        `(${abandoned.writing.rows} rows) whose write had not finished and ${abandoned.waiting.records} records ` +
        `(${abandoned.waiting.rows} rows) never written; none of them was acknowledged`,
    );
    return abandoned;
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight) return;
    this.scheduled = true;
    // setImmediate, not a microtask: the group then holds every request whose resolver reached
    // this point during the current turn of the event loop, at no added latency.
    setImmediate(() => {
      this.scheduled = false;
      if (!this.waiting.length) return; // they all timed out meanwhile
      this.inFlight = this.commit().finally(() => {
        this.inFlight = undefined;
        if (this.waiting.length) this.schedule();
      });
    });
  }

  private async commit(): Promise<void> {
    this.writing = this.takeGroup();
    try {
      await this.writeGroup(this.writing);
    } finally {
      this.writing = [];
    }
  }

  /** The oldest waiting records, up to the group's bounds (at least one). */
  private takeGroup(): Member<T>[] {
    const { maxGroupRows, maxGroupBytes } = this.limits;
    const group: Member<T>[] = [];
    let rows = 0;
    let bytes = 0;
    for (const m of this.waiting) {
      if (group.length && (rows + m.rows.length > maxGroupRows || bytes + m.bytes > maxGroupBytes)) break;
      group.push(m);
      rows += m.rows.length;
      bytes += m.bytes;
    }
    this.waiting.splice(0, group.length);
    this.waitingRows -= rows;
    this.waitingBytes -= bytes;
    return group;
  }

  private async writeGroup(group: readonly Member<T>[]): Promise<void> {
    try {
      await this.write(group.flatMap((m) => m.rows));
      for (const m of group) this.succeed(m);
      return;
    } catch (err) {
      if (group.length === 1 || err instanceof GroupWriteError) {
        for (const m of group) this.fail(m, err);
        return;
      }
    }
    // Record by record; those that timed out meanwhile are not written again (they failed already).
    for (const m of group) {
      if (m.settled) continue;
      try {
        await this.write(m.rows);
        this.succeed(m);
      } catch (err) {
        if (!(err instanceof GroupWriteError)) this.fail(m, err);
        else for (const rest of group) this.fail(rest, err);
      }
    }
  }

  private timeOut(member: Member<T>, err: CommitTimeoutError): void {
    this.fail(member, err);
    const i = this.waiting.indexOf(member);
    if (i < 0) return; // being written: the write goes on, its outcome no longer reaches the request
    this.waiting.splice(i, 1);
    this.waitingRows -= member.rows.length;
    this.waitingBytes -= member.bytes;
  }

  /** Acknowledges the record: its rows are committed (unless it failed already, e.g. timed out). */
  private succeed(member: Member<T>): void {
    if (this.settle(member)) member.resolve();
  }

  private fail(member: Member<T>, err: unknown): void {
    if (this.settle(member)) member.reject(err);
  }

  /** True the first time only: a record's promise settles once. */
  private settle(member: Member<T>): boolean {
    if (member.settled) return false;
    member.settled = true;
    clearTimeout(member.timer);
    return true;
  }
}

function rowCount(members: ReadonlyArray<Member<unknown>>): number {
  return members.reduce((n, m) => n + m.rows.length, 0);
}

/** Waits for `promise` to settle, at most `ms`; true when it did. */
export async function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]);
  clearTimeout(timer);
  return settled;
}
