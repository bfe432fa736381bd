/**
 * Starting `advsieve serve` as a child process, as the API tests and the service benchmarks do:
 * a temporary audit log unless the caller names one, and the port the service logs once it
 * listens (PORT=0 picks a free one).
 */
import type { ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/**
 * ADVSIEVE_AUDIT_DB in a new temporary directory, unless `given` names an audit log (its own file
 * or DATABASE_URL); `removeOnExit` deletes the directory when the process exits. A child service
 * then never writes into the package's data/audit.sqlite, nor shares a file with another.
 */
export function temporaryAuditLog(
  given: Readonly<Record<string, string | undefined>>,
  prefix: string,
): { env: Record<string, string>; removeOnExit(proc: ChildProcess): void } {
  if (given.ADVSIEVE_AUDIT_DB || given.DATABASE_URL) return { env: {}, removeOnExit: () => undefined };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return {
    env: { ADVSIEVE_AUDIT_DB: path.join(dir, 'audit.sqlite') },
    removeOnExit: (proc) => proc.once('exit', () => fs.rmSync(dir, { recursive: true, force: true })),
  };
}

/**
 * The port a starting service logs (its JSON line with `port` and `url`). Every stderr line goes
 * to `onLine` as it comes, also after; rejects if the process exits before it listens.
 */
export function listeningPort(proc: ChildProcess, onLine: (line: string) => void): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let buffered = '';
    proc.stderr!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        onLine(line);
        try {
          const entry = JSON.parse(line) as { port?: number; url?: string };
          if (entry.port && entry.url) resolve(entry.port);
        } catch {
          // not a log line (a warning printed by a native library)
        }
      }
    });
    proc.once('exit', (code) => reject(new Error(`service exited (${code}) before listening`)));
  });
}
