/**
 * Group commit: the records of every request that arrives while the log is idle for one turn of the
 * event loop (or while the previous commit is still in flight) are written in one transaction, and
 * all their promises settle after it commits. A commit's fixed cost — an fsync in SQLite with
 * synchronous=FULL, a round trip and a WAL flush in PostgreSQL — is then paid once per group, not
 * once per request, so under load the cost per image falls as the groups grow.
 *
 * One commit at a time: with SQLite a transaction is synchronous anyway, and with PostgreSQL it
 * keeps this process's ids in commit order (pagination relies on ids growing with time).
 */
interface Waiting<T> {
  readonly rows: readonly T[];
  resolve(): void;
  reject(err: unknown): void;
}

export class GroupCommit<T> {
  private waiting: Waiting<T>[] = [];
  private scheduled = false;
  private inFlight: Promise<void> | undefined;

  /** `write` stores the rows in one transaction and returns (or resolves) once it has committed. */
  constructor(private readonly write: (rows: readonly T[]) => void | Promise<void>) {}

  add(rows: readonly T[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiting.push({ rows, resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once nothing is waiting or being written. */
  async drain(): Promise<void> {
    while (this.inFlight || this.waiting.length) {
      if (this.inFlight) await this.inFlight;
      else await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight) return;
    this.scheduled = true;
    // setImmediate, not a microtask: the group then holds every request whose resolver reached
    // this point during the current turn of the event loop, at no added latency.
    setImmediate(() => {
      this.scheduled = false;
      this.inFlight = this.commit().finally(() => {
        this.inFlight = undefined;
        if (this.waiting.length) this.schedule();
      });
    });
  }

  private async commit(): Promise<void> {
    const group = this.waiting;
    this.waiting = [];
    try {
      await this.write(group.flatMap((w) => w.rows));
      for (const w of group) w.resolve();
    } catch (err) {
      for (const w of group) w.reject(err);
    }
  }
}
