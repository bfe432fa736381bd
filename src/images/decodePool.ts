/**
 * Decoding off the service's thread, in killable processes. A file within every size limit can
 * still cost minutes of CPU in libvips (an ICC profile of thousands of stages, a progressive JPEG of
 * thousands of scans) or a second of chunk walking in JavaScript (400 000 IDAT chunks): on the
 * event loop that stops every request and /health/live; on libuv's threads it cannot be stopped.
 * So every decode runs in one of `size` child processes (src/images/decodeProcess.ts), one file at
 * a time each, within a budget: `timeoutMs` of the process's CPU time, and in wall-clock time the
 * request's time left (and at most WALL_FACTOR × timeoutMs). Past either the process is SIGKILLed
 * (its CPU is freed at once) and replaced, and that image alone gets DECODE_TIMEOUT; a process that
 * dies on an image (a libvips abort) gives it DECODE_FAILED.
 *
 * CPU time, not wall-clock time, because what a hostile file costs is CPU: the decode processes
 * run niced below the service, so on a busy machine a 16 ms decode waited hundreds of ms for a core
 * and was stopped as if the file were hostile (CI saw DECODE_TIMEOUT for fixtures under a 300 ms
 * budget). Where /proc cannot be read (not Linux), the budget is wall-clock time.
 *
 * Hand-written rather than a pool library: none is installed (workerpool, piscina), and what is
 * needed — a budget per task that kills the process, replacement, binary data both ways with
 * structured-clone serialization — is this file.
 */
import { ChildProcess, fork } from 'child_process';
import { readFileSync } from 'fs';
import type { Writable } from 'stream';
import { workerScript } from '../util/workerScript';
import type { DecodedViews, DecodeOptions } from './decode';
import { ImageDecodeError } from './decodeErrors';
import type { DecodeReply, DecodeRequest } from './decodeProcess';

/** The task's request deadline passed before a process was free for it: it was never started. */
export class DecodeDeadlineError extends Error {
  constructor() {
    super('the deadline passed before the image could be decoded');
    this.name = 'DecodeDeadlineError';
  }
}

interface Task {
  readonly bytes: Buffer;
  readonly shape: readonly [number, number, number];
  readonly options: DecodeOptions;
  /** performance.now() time. */
  readonly deadline: number;
  readonly resolve: (v: DecodedViews) => void;
  readonly reject: (e: Error) => void;
}

interface Running {
  readonly id: number;
  readonly task: Task;
  timer: NodeJS.Timeout;
}

/** A decode's wall-clock limit is at most this many times its CPU budget (a process that gets no CPU at all). */
export const WALL_FACTOR = 4;
/** How often a running decode's CPU time is read, at most (ms). */
const CPU_CHECK_MS = 20;
/** Linux reports CPU times in /proc in USER_HZ = 100 ticks per second on every architecture Node runs on. */
const USER_HZ = 100;

/** CPU time (user + system, all threads) a process has used, in ms; undefined where /proc cannot say. */
export function processCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ;
  } catch {
    return undefined;
  }
}

interface Child {
  readonly proc: ChildProcess;
  ready: boolean;
  /** It started once: its exit is an image's fault (or ours), not a process that cannot start. */
  wasReady: boolean;
  running?: Running;
}

export class DecodePool {
  private readonly children = new Set<Child>();
  private readonly queue: Task[] = [];
  private nextId = 1;
  private closed = false;
  /** Processes killed for their budget, and processes that died on an image (for metrics and tests). */
  timeouts = 0;
  crashes = 0;

  constructor(
    readonly size: number,
    readonly timeoutMs: number,
    private readonly script = workerScript(__dirname, 'decodeProcess'),
  ) {
    if (!Number.isInteger(size) || size < 1)
      throw new RangeError(`decode pool size must be an integer ≥ 1, got ${size}`);
    for (let i = 0; i < size; i++) this.spawn();
  }

  /** The decode processes' ids (tests check that a killed one is gone). */
  get pids(): number[] {
    return [...this.children].flatMap((c) => (c.proc.pid === undefined ? [] : [c.proc.pid]));
  }

  /** Decodes running now, and waiting for a process. */
  get active(): number {
    return [...this.children].filter((c) => c.running).length;
  }

  get queued(): number {
    return this.queue.length;
  }

  /**
   * The file's views, decoded in a child process within min(timeoutMs, deadline − now). Rejects with
   * ImageDecodeError (per image: its code) or DecodeDeadlineError (the request's deadline passed
   * while the file waited for a process).
   */
  decode(
    bytes: Buffer,
    shape: readonly [number, number, number],
    options: DecodeOptions = {},
    deadline = Infinity,
  ): Promise<DecodedViews> {
    if (this.closed) return Promise.reject(new Error('the decode pool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ bytes, shape, options, deadline, resolve, reject });
      this.pump();
    });
  }

  /** Kills every process; queued and running decodes fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.queue.splice(0)) t.reject(new Error('the decode pool is closed'));
    const exits = [...this.children].map((c) => {
      if (c.running) {
        clearTimeout(c.running.timer);
        c.running.task.reject(new Error('the decode pool is closed'));
        c.running = undefined;
      }
      if (c.proc.exitCode !== null || c.proc.signalCode !== null) return Promise.resolve();
      const exited = new Promise<void>((r) => c.proc.once('exit', () => r()));
      c.proc.kill('SIGKILL');
      return exited;
    });
    await Promise.all(exits);
  }

  private spawn(): void {
    const proc = fork(this.script, [], {
      serialization: 'advanced', // Buffers and Float32Arrays cross as binary, not as JSON arrays
      // fd 4: the files' bytes, raw (src/images/decodeProcess.ts says why not over IPC).
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', 'pipe'],
      execArgv: [],
    });
    const child: Child = { proc, ready: false, wasReady: false };
    this.children.add(child);
    proc.on('message', (m: DecodeReply | { ready: true }) => {
      if ('ready' in m) {
        child.ready = child.wasReady = true;
        this.pump();
        return;
      }
      this.settle(child, m);
    });
    proc.on('error', () => undefined); // 'exit' follows and does the work
    (proc.stdio[4] as Writable).on('error', () => undefined); // EPIPE from a killed process: 'exit' handles it
    proc.once('exit', (code, signal) => this.exited(child, code, signal));
  }

  private settle(child: Child, reply: DecodeReply): void {
    const running = child.running;
    if (!running || running.id !== reply.id) return; // a reply after its budget: already answered
    clearTimeout(running.timer);
    child.running = undefined;
    if ('ok' in reply) running.task.resolve(reply.ok);
    else {
      const e = reply.error;
      running.task.reject(new ImageDecodeError(e.code as ImageDecodeError['code'], e.message, e.detail));
    }
    this.pump();
  }

  private exited(child: Child, code: number | null, signal: NodeJS.Signals | null): void {
    this.children.delete(child);
    const running = child.running;
    if (running) {
      clearTimeout(running.timer);
      child.running = undefined;
      this.crashes++;
      running.task.reject(
        new ImageDecodeError(
          'DECODE_FAILED',
          'the image could not be decoded: its decoder stopped on it',
          `decode process exited (code ${code}, signal ${signal})`,
        ),
      );
    }
    if (this.closed) return;
    // A process that dies before it is ready would die again at once: retry after a pause.
    if (child.ready || child.wasReady) this.spawn();
    else setTimeout(() => !this.closed && this.spawn(), 1000).unref();
    this.pump();
  }

  private pump(): void {
    while (this.queue.length) {
      const child = [...this.children].find((c) => c.ready && !c.running && c.proc.connected);
      if (!child) return;
      const task = this.queue.shift()!;
      const start = performance.now();
      const wall = Math.min(this.timeoutMs * WALL_FACTOR, task.deadline - start);
      if (wall <= 0) {
        task.reject(new DecodeDeadlineError()); // never started: its request has failed already
        continue;
      }
      const id = this.nextId++;
      const cpuStart = processCpuMs(child.proc.pid);
      // Without /proc the CPU budget is measured in wall-clock time.
      const cpuUsed = () => {
        const now = cpuStart === undefined ? undefined : processCpuMs(child.proc.pid);
        return now === undefined ? performance.now() - start : now - cpuStart!;
      };
      const check = () => {
        const wallLeft = start + wall - performance.now();
        if (wallLeft <= 0) return this.overBudget(child, id, `the ${Math.round(wall)} ms it had`);
        const cpuLeft = this.timeoutMs - cpuUsed();
        if (cpuLeft <= 0) return this.overBudget(child, id, `its budget of ${this.timeoutMs} ms of CPU time`);
        running.timer = setTimeout(check, Math.max(CPU_CHECK_MS, Math.min(cpuLeft, wallLeft)));
      };
      const running: Running = { id, task, timer: setTimeout(check, Math.min(this.timeoutMs, wall)) };
      child.running = running;
      const req: DecodeRequest = { id, length: task.bytes.length, shape: task.shape, options: task.options };
      child.proc.send(req, (err) => {
        if (err) this.overBudget(child, id, '', 'the image could not be sent to a decode process');
      });
      (child.proc.stdio[4] as Writable).write(task.bytes);
    }
  }

  /** The decode ran past its budget: the process is killed (its CPU freed now) and replaced on exit. */
  private overBudget(child: Child, id: number, limit: string, failed?: string): void {
    const running = child.running;
    if (!running || running.id !== id) return;
    clearTimeout(running.timer);
    child.running = undefined;
    child.ready = false; // takes nothing more; replaced when it exits
    child.proc.kill('SIGKILL');
    if (failed) {
      running.task.reject(new ImageDecodeError('DECODE_FAILED', 'the image could not be decoded', failed));
      return;
    }
    this.timeouts++;
    running.task.reject(
      new ImageDecodeError('DECODE_TIMEOUT', `decoding the image took more than ${limit}; it was stopped`),
    );
  }
}
