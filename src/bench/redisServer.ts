/**
 * A throwaway Redis for the tests and the Redis benchmarks: Debian's `redis-server` on a free port of 127.0.0.1, its working
 * directory a temporary one, without persistence (no RDB snapshots, no AOF), stopped and removed
 * afterwards. Nothing depends on a Redis the package may have started.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { freePort } from '../util/freePort';

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** The server's process id (a benchmark reads its CPU time). */
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

/** Resolves once the server says it accepts connections; rejects with its output if it exits first. */
function started(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        child.stdout!.off('data', onData);
        child.off('exit', onExit);
        resolve();
      }
    };
    const onExit = (code: number | null) =>
      reject(new Error(`redis-server exited (${code}) before it was ready:\n${output}`));
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
    child.once('error', (err) =>
      reject(new Error(`could not run redis-server (apt-get install -y redis-server): ${err.message}`)),
    );
  });
}

export async function startRedis(): Promise<RedisServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-redis-'));
  // A port found free can be taken before redis-server binds it: a few tries.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      await started(child);
    } catch (err) {
      child.kill('SIGKILL');
      if (attempt < 3) continue;
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    child.stdout!.resume(); // keep draining its log
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let stopped = false;
    return {
      url: `redis://127.0.0.1:${port}`,
      port,
      pid: child.pid,
      async stop() {
        if (stopped) return;
        stopped = true;
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          await exited;
        }
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}
