/**
 * CPU time of the benchmark's processes, read from /proc (Linux; elsewhere nothing is read): what a
 * run spent where, so that a benchmark can say which part grew when a configuration got slower.
 */
import * as fs from 'fs';

const TICKS_PER_SECOND = 100; // USER_HZ: 100 on every Linux architecture Node runs on

/** User + system seconds of one process (all its threads; `/proc/PID/task/PID/stat`: its main thread's), or 0 when it cannot be read. */
function ownSeconds(pid: number, file = `/proc/${pid}/stat`): number {
  try {
    const stat = fs.readFileSync(file, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND; // utime, stime
  } catch {
    return 0;
  }
}

/** The process's live children (each thread's list), or none when they cannot be read. */
function childrenOf(pid: number): number[] {
  try {
    return fs
      .readdirSync(`/proc/${pid}/task`)
      .flatMap((tid) => fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/))
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * A process's seconds: its main thread's (a Node service's event loop: HTTP, GraphQL, JSON, the
 * audit log), its other threads' (worker threads such as engine workers, libuv's pool, V8's
 * collector) and its live children's (e.g. decode processes).
 */
export function cpuSeconds(pid: number | undefined): { main: number; threads: number; children: number } {
  if (pid === undefined) return { main: 0, threads: 0, children: 0 };
  const main = ownSeconds(pid, `/proc/${pid}/task/${pid}/stat`);
  return {
    main,
    threads: ownSeconds(pid) - main,
    children: childrenOf(pid).reduce((s, c) => s + ownSeconds(c), 0),
  };
}

/** Whether this system gives per-process CPU times (/proc). */
export const PROC_CPU = fs.existsSync('/proc/self/stat');
