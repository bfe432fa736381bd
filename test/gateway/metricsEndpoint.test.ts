/** Where /metrics is served: open without keys, absent when off (the other cases: test/api/gateway.test.ts). */
import express from 'express';
import type { AddressInfo } from 'net';
import { Gateway } from '../../src/gateway/gateway';
import { mountMetrics } from '../../src/gateway/metricsEndpoint';
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
