/** Where /metrics is served: open without keys, absent when off (the other cases: test/api/gateway.test.ts). */
import express from 'express';
import * as net from 'net';
import type { AddressInfo } from 'net';
import { Gateway } from '../../src/gateway/gateway';
import { METRICS_MAX_CONNECTIONS, mountMetrics } from '../../src/gateway/metricsEndpoint';
import { freePort } from '../../src/util/freePort';
import { configFromEnv } from '../../src/server/config';
import { Metrics } from '../../src/request/metrics';

async function statusOf(env: Record<string, string>): Promise<number> {
  const metrics = new Metrics();
  const app = express();
  const config = configFromEnv(env);
  await mountMetrics(app, new Gateway(config.gateway, metrics, config), metrics.registry);
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  try {
    return (await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`)).status;
  } finally {
    server.close();
  }
}

test('ADVSIEVE_METRICS=on without keys: open on the main port; off: 404', async () => {
  expect(await statusOf({})).toBe(200);
  expect(await statusOf({ ADVSIEVE_METRICS: 'off' })).toBe(404);
});

test('a metrics port of its own holds at most METRICS_MAX_CONNECTIONS connections, and still answers a scrape after', async () => {
  const metrics = new Metrics();
  const config = configFromEnv({ ADVSIEVE_METRICS: String(await freePort()) });
  const endpoint = await mountMetrics(express(), new Gateway(config.gateway, metrics, config), metrics.registry);
  const sockets: net.Socket[] = [];
  try {
    const connect = () =>
      new Promise<net.Socket>((resolve) => {
        const s = net.connect(endpoint.port!, '127.0.0.1', () => resolve(s));
        s.on('error', () => undefined);
        sockets.push(s);
      });
    for (let i = 0; i < METRICS_MAX_CONNECTIONS; i++) await connect();
    const extra = await connect();
    await new Promise((r) => extra.once('close', r)); // closed on arrival
    for (const s of sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 100));
    expect((await fetch(`http://127.0.0.1:${endpoint.port}/metrics`)).status).toBe(200);
  } finally {
    for (const s of sockets) s.destroy();
    await endpoint.close();
  }
});
