/**
 * The containers' health check (docker/entrypoint.sh healthcheck) against a stand-in service: a
 * replica that is ready, or saturated (busy to its admission limit: working, just full), is
 * healthy; one starting, stopping or not answering is not.
 */
import { execFile } from 'child_process';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';

const ENTRYPOINT = path.join(__dirname, '..', '..', 'docker', 'entrypoint.sh');

function healthcheck(port: number): Promise<number> {
  return new Promise((resolve) =>
    execFile(ENTRYPOINT, ['healthcheck'], { env: { ...process.env, PORT: String(port) } }, (err) =>
      resolve(err ? Number((err as { code?: number }).code ?? 1) : 0),
    ),
  );
}

async function standIn(status: number, body: unknown): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

test.each([
  [200, { status: 'ready' }, 0],
  [503, { status: 'saturated' }, 0],
  [503, { status: 'starting' }, 1],
  [503, { status: 'stopping' }, 1],
  [500, { status: 'saturated' }, 1],
])('/health/ready %i %j → exit %i', async (status, body, expected) => {
  const s = await standIn(status, body);
  try {
    expect(await healthcheck(s.port)).toBe(expected);
  } finally {
    await s.close();
  }
});

test('nothing listening: unhealthy', async () => {
  const s = await standIn(200, {});
  const port = s.port;
  await s.close();
  expect(await healthcheck(port)).not.toBe(0);
});
