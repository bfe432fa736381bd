/**
 * HAProxy (Debian's `haproxy`) in front of advsieve replicas on loopback, for the replica tests and
 * benchmarks: round robin; health checks on /health/ready, so a replica that is starting, stopping,
 * saturated or dead gets no new requests; a request whose connection fails, or whose server dies
 * before answering (empty response), is retried on another server (`retry-on`, `option
 * redispatch`). Such a retry re-sends a POST that may have been judged already: the audit log
 * records a retried request once when the client names it with `x-request-id` (src/audit/columns.ts).
 * Each answer says which server gave it (`x-served-by`).
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { freePort } from '../util/freePort';

export interface Haproxy {
  readonly port: number;
  readonly proc: ChildProcess;
  stop(): Promise<void>;
}

/** The configuration for `backends` (loopback ports), listening on `port`. */
export function haproxyConfig(port: number, backends: readonly number[]): string {
  return [
    'global',
    '  maxconn 1024',
    'defaults',
    '  mode http',
    '  timeout connect 1s',
    '  timeout client 60s',
    '  timeout server 60s',
    // A replica busy screening answers its health check late, not never: on a loaded machine a
    // check cut at the connect timeout marked every replica down and queued all requests.
    '  timeout check 5s',
    '  retries 3',
    '  option redispatch 1',
    '  retry-on conn-failure empty-response 503',
    '  option http-buffer-request',
    'frontend advsieve',
    `  bind 127.0.0.1:${port}`,
    '  default_backend replicas',
    'backend replicas',
    '  balance roundrobin',
    '  option httpchk GET /health/ready',
    '  http-check expect status 200',
    '  http-response set-header x-served-by %[srv_name]',
    '  default-server inter 500ms fall 3 rise 1',
    ...backends.map((p, i) => `  server r${i + 1} 127.0.0.1:${p} check`),
    '',
  ].join('\n');
}

/** Starts HAProxy in the foreground (-db) with a configuration in a temporary directory; resolves once it listens. */
export async function startHaproxy(backends: readonly number[]): Promise<Haproxy> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-haproxy-'));
  const port = await freePort();
  const cfg = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(cfg, haproxyConfig(port, backends));
  const proc = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  proc.stderr!.on('data', (d: Buffer) => {
    output = (output + d.toString()).slice(-4000);
    if (process.env.HAPROXY_LOG) process.stderr.write(d);
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const failed = new Promise<never>((_, reject) => {
    proc.once('error', (err) =>
      reject(new Error(`could not run haproxy (apt-get install -y haproxy): ${err.message}`)),
    );
    proc.once('exit', (code) => reject(new Error(`haproxy exited (${code}):\n${output}`)));
  });
  failed.catch(() => undefined);
  await Promise.race([listening(port), failed]);
  return {
    port,
    proc,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function listening(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/health/live`).then(
      () => true,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`haproxy does not answer on port ${port} after 10 s`);
}
