/**
 * The service as a container runs it: started through docker/entrypoint.sh with NODE_ENV=production.
 * Readiness (503 until the workers are up), the entry point's health check, production's rules (no
 * attacks, no stack traces) and a graceful SIGTERM: requests whose images wait in the engine's
 * queue are answered, then the process exits 0.
 */
import * as http from 'http';
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { errorCode, engineStats, fixtureFiles, gql, ROOT, startServer, TestServer } from './helpers';

const ENTRYPOINT = path.join(ROOT, 'docker', 'entrypoint.sh');
/** Long enough that requests are certainly queued when SIGTERM arrives. */
const MAX_DELAY_MS = 2000;

let server: TestServer;
const images = fixtureFiles().map((f) => fs.readFileSync(f).toString('base64'));

function healthcheck(port: number): Promise<number> {
  return new Promise((resolve) => {
    execFile(ENTRYPOINT, ['healthcheck'], { env: { ...process.env, PORT: String(port) } }, (err) =>
      resolve(err ? ((err as { code?: number }).code ?? 1) : 0),
    );
  });
}

function hasStacktrace(body: unknown): boolean {
  return JSON.stringify(body).includes('stacktrace');
}

beforeAll(async () => {
  server = await startServer({ NODE_ENV: 'production', ADVSIEVE_MAX_DELAY_MS: String(MAX_DELAY_MS) }, [ENTRYPOINT]);
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

test('ready only once the workers are up; the entry point’s health check agrees', async () => {
  expect(server.readinessSeen[0]).toBe(503);
  expect(server.readinessSeen[server.readinessSeen.length - 1]).toBe(200);
  expect(await healthcheck(server.port)).toBe(0);
});

test('idle keep-alive connections outlive the idle timeouts of clients and balancers in front (65 s, told in Keep-Alive)', async () => {
  // Node's default, 5 s, is shorter than HAProxy's or a cloud balancer's: a request sent on a connection
  // the server is closing would fail before reaching the service.
  const headers = await new Promise<http.IncomingHttpHeaders>((resolve, reject) => {
    const agent = new http.Agent({ keepAlive: true });
    http
      .get({ host: '127.0.0.1', port: server.port, path: '/health/live', agent }, (res) => {
        res.resume();
        res.on('end', () => {
          agent.destroy();
          resolve(res.headers);
        });
      })
      .on('error', reject);
  });
  expect(headers.connection).toBe('keep-alive');
  expect(headers['keep-alive']).toBe('timeout=65');
});

test('production: attacks are off, and errors carry no stack traces', async () => {
  const model = await gql<{ model: { attacksEnabled: boolean } }>(server, '{ model { attacksEnabled } }');
  expect(model.body.data!.model.attacksEnabled).toBe(false);
  const attack = await gql(
    server,
    'mutation($x: ImageInput!){ attack(image: $x, method: FGSM, epsilon: 0.1) { success } }',
    { x: { base64: images[0] } },
  );
  expect(errorCode(attack)).toBe('ATTACKS_DISABLED');
  expect(attack.status).toBe(403);
  const bad = await gql(server, 'mutation($i:[ImageInput!]!){ screen(images:$i){ index } }', { i: [{}] });
  expect(errorCode(bad)).toBe('BAD_USER_INPUT');
  const invalid = await gql(server, '{ model { nope } }');
  expect(errorCode(invalid)).toBe('GRAPHQL_VALIDATION_FAILED');
  for (const r of [attack, bad, invalid]) expect(hasStacktrace(r.body)).toBe(false);
});

test('SIGTERM: queued requests are answered, new connections refused, exit status 0', async () => {
  const q = 'mutation($i:[ImageInput!]!){ screen(images:$i){ prediction { label } error { code } } }';
  const requests = images
    .slice(0, 3)
    .map((b64) => gql<{ screen: Array<{ prediction: { label: string } }> }>(server, q, { i: [{ base64: b64 }] }));
  // Wait until all three images sit in the engine's queue (the batch waits MAX_DELAY_MS to fill).
  const deadline = Date.now() + MAX_DELAY_MS;
  while ((await engineStats(server)).queueDepth < 3 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  // Under a loaded machine an image may still be decoding; at least one must be waiting in the queue.
  expect((await engineStats(server)).queueDepth).toBeGreaterThanOrEqual(1);
  server.proc.kill('SIGTERM');
  const answers = await Promise.all(requests);
  for (const a of answers) {
    expect(a.status).toBe(200);
    expect(a.body.data!.screen[0].prediction.label).toBeTruthy();
  }
  expect(await server.exited).toEqual({ code: 0, signal: null });
  await expect(fetch(`${server.base}/health/live`)).rejects.toThrow();
  expect(await healthcheck(server.port)).not.toBe(0);
  expect(server.logs.some((l) => l.includes('"msg":"shut down"'))).toBe(true);
});
