/**
 * Where Prometheus reads /metrics (ADVSIEVE_METRICS):
 * - `on` (default): on the main port. With API keys configured it needs an `admin` key, like
 *   everything on that port but health (Prometheus sends one with `authorization: credentials`);
 *   without keys it is open, as the rest of the API is.
 * - a port number: on a listener of its own, bound to ADVSIEVE_METRICS_HOST (default 127.0.0.1)
 *   and never asking for a key — that listener is meant for a private network, the main port's
 *   /metrics answers 404.
 * - `off`: nowhere (404).
 */
import express, { type Express, type RequestHandler } from 'express';
import * as http from 'http';
import type { AddressInfo } from 'net';
import type { Registry } from 'prom-client';
import { logger } from '../util/logger';
import type { Gateway } from './gateway';

/** Connections the metrics listener of its own holds at most; past it, closed on arrival. */
export const METRICS_MAX_CONNECTIONS = 16;

export interface MetricsEndpoint {
  /** The listener's port when /metrics has one of its own. */
  readonly port: number | undefined;
  close(): Promise<void>;
}

function scrape(registry: Registry): RequestHandler {
  return (_req, res, next) => {
    registry.metrics().then((text) => {
      res.set('content-type', registry.contentType).send(text);
    }, next);
  };
}

export async function mountMetrics(app: Express, gateway: Gateway, registry: Registry): Promise<MetricsEndpoint> {
  const where = gateway.config.metrics;
  if (where === 'off') return { port: undefined, close: async () => {} };
  if (where === 'on') {
    app.get('/metrics', gateway.requireAdmin, scrape(registry));
    return { port: undefined, close: async () => {} };
  }
  const apart = express();
  apart.disable('x-powered-by');
  apart.get('/metrics', scrape(registry));
  const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, apart);
  // A scraper needs one connection; the listener shares the process's descriptors with the API's.
  server.maxConnections = METRICS_MAX_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(where.port, where.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ metricsPort: port, host: where.host }, `metrics on http://${where.host}:${port}/metrics`);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // a scraper's keep-alive connection would hold the close
      }),
  };
}
