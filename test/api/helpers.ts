/**
 * The API under test is a started server, spoken to over real HTTP: a child process running the
 * built CLI (`advsieve serve`) or the container entry point, on a port it picks (PORT=0) and reports
 * in its start-up log. Run `npm run build` first (the suite's `npm test` does).
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { listeningPort, temporaryAuditLog } from '../../src/util/childService';

export const ROOT = path.join(__dirname, '..', '..');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'fashion');

/** The committed Fashion-MNIST test images, sorted by name. */
export function fixtureFiles(): string[] {
  return fs
    .readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.png'))
    .sort()
    .map((f) => path.join(FIXTURES, f));
}

export interface TestServer {
  readonly port: number;
  readonly base: string;
  readonly proc: ChildProcess;
  /** /health/ready statuses seen while waiting for the server to become ready. */
  readonly readinessSeen: number[];
  readonly logs: string[];
  /**
   * The first log line that matches, waiting up to timeoutMs for it: the server's log reaches this
   * process through a pipe, so a line written while answering a request can arrive after the answer.
   */
  waitForLog(match: (line: string) => boolean, timeoutMs?: number): Promise<string | undefined>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startServer(
  env: Record<string, string>,
  command: readonly string[] = [process.execPath, 'bin/advsieve.js', 'serve'],
): Promise<TestServer> {
  // Each server its own audit log in a temporary directory (removed when it exits), unless the
  // test names one: tests never write into the package's data/audit.sqlite, nor share a file.
  const audit = temporaryAuditLog(env, 'advsieve-api-');
  const proc = spawn(command[0], command.slice(1), {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', ADVSIEVE_BACKEND: 'wasm', ...audit.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  audit.removeOnExit(proc);
  const logs: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const port = await listeningPort(proc, (line) => logs.push(line)).catch((err: Error) => {
    throw new Error(`${err.message}:\n${logs.join('\n')}`);
  });
  proc.stdout!.resume();
  const base = `http://127.0.0.1:${port}`;
  const readinessSeen: number[] = [];
  const deadline = Date.now() + 90_000;
  for (;;) {
    const status = await fetch(`${base}/health/ready`).then(
      (r) => r.status,
      () => 0,
    );
    if (readinessSeen[readinessSeen.length - 1] !== status) readinessSeen.push(status);
    if (status === 200) break;
    if (Date.now() > deadline) throw new Error(`not ready after 90 s:\n${logs.join('\n')}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    const result = await exited;
    clearTimeout(timer);
    return result;
  };
  const waitForLog = async (match: (line: string) => boolean, timeoutMs = 5000) => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const line = logs.find(match);
      if (line !== undefined || Date.now() > until) return line;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { port, base, proc, readinessSeen, logs, waitForLog, exited, stop };
}

export interface GqlResponse<T = Record<string, unknown>> {
  readonly status: number;
  readonly headers: Headers;
  readonly body: { data?: T | null; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };
}

async function asGql<T>(res: Response): Promise<GqlResponse<T>> {
  const text = await res.text();
  try {
    return { status: res.status, headers: res.headers, body: JSON.parse(text) as GqlResponse<T>['body'] };
  } catch {
    throw new Error(`HTTP ${res.status}, not JSON: ${text.slice(0, 300)}`);
  }
}

/** A JSON POST (application/json needs no preflight header: it is not a CSRF-able content type). */
export async function gql<T = Record<string, unknown>>(
  server: TestServer,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<GqlResponse<T>> {
  return asGql<T>(
    await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query, variables }),
    }),
  );
}

export interface FilePart {
  /** The part's field name, as named in `map`. */
  readonly name: string;
  readonly filename: string;
  readonly contentType: string;
  readonly data: Buffer;
}

/**
 * A request body built exactly as the GraphQL multipart request spec lays it out
 * (github.com/jaydenseric/graphql-multipart-request-spec): the `operations` part (the query, with
 * null where each file goes), the `map` part (file field name → the paths it fills), then the files.
 */
export function multipartBody(
  operations: { query: string; variables: Record<string, unknown> },
  map: Record<string, string[]>,
  files: readonly FilePart[],
): { body: Buffer; contentType: string } {
  const boundary = `----advsieve-test-${Math.random().toString(16).slice(2)}`;
  const parts: Buffer[] = [];
  const field = (name: string, value: string) =>
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  field('operations', JSON.stringify(operations));
  field('map', JSON.stringify(map));
  for (const f of files) {
    parts.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${f.name}"; filename="${f.filename}"\r\n` +
          `Content-Type: ${f.contentType}\r\n\r\n`,
      ),
      f.data,
      Buffer.from('\r\n'),
    );
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

/**
 * A multipart request of `files` given as one list variable `$images` ([ImageInput!]!), each file
 * mapped to `variables.images.<i>.file`; `preflight` sends Apollo-Require-Preflight.
 */
export async function gqlMultipart<T = Record<string, unknown>>(
  server: TestServer,
  query: string,
  files: readonly Buffer[],
  options: {
    preflight?: boolean;
    variables?: Record<string, unknown>;
    map?: Record<string, string[]>;
    parts?: FilePart[];
  } = {},
): Promise<GqlResponse<T>> {
  const variables = { images: files.map(() => ({ file: null })), ...options.variables };
  const map = options.map ?? Object.fromEntries(files.map((_, i) => [String(i), [`variables.images.${i}.file`]]));
  const parts =
    options.parts ??
    files.map((data, i) => ({ name: String(i), filename: `image-${i}.png`, contentType: 'image/png', data }));
  const { body, contentType } = multipartBody({ query, variables }, map, parts);
  const headers: Record<string, string> = { 'content-type': contentType };
  if (options.preflight !== false) headers['apollo-require-preflight'] = 'true';
  return asGql<T>(await fetch(`${server.base}/graphql`, { method: 'POST', headers, body }));
}

/** The engine's counters, read through the API. */
export async function engineStats(
  server: TestServer,
): Promise<{ batches: number; items: number; rejected: number; queueDepth: number }> {
  const r = await gql<{ engineStats: { batches: number; items: number; rejected: number; queueDepth: number } }>(
    server,
    '{ engineStats { batches items rejected queueDepth } }',
  );
  return r.body.data!.engineStats;
}

export function errorCode(r: GqlResponse<unknown>): unknown {
  return r.body.errors?.[0]?.extensions?.code;
}

/** A POST's answer as the gateway tests read it: status, headers and the parsed GraphQL body. */
export interface JsonReply {
  status: number;
  headers: Headers;
  body: {
    data?: Record<string, unknown> | null;
    errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
  };
}

/** POSTs `body` as JSON to /graphql with `headers`. */
export async function postJson(
  server: TestServer,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<JsonReply> {
  const res = await fetch(`${server.base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as JsonReply['body'] };
}
