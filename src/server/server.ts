/**
 * The HTTP service: Express 5 with Apollo Server 5 on /graphql, health on /health/live and
 * /health/ready, Prometheus on /metrics. The port opens before the model loads, so an orchestrator
 * sees "live, not ready" while the workers start; /graphql answers 503 until then.
 *
 * /graphql's middleware, in order: refuse multipart requests without a CSRF-preventing header
 * before any upload is read (Apollo checks the same later, too late to avoid reading the files);
 * the gateway's API key (src/gateway/, headers only); admission (one request at a time per
 * connection, requests and bytes in flight, globally and per key, the request's deadline, a
 * declared body over the limit: src/server/admission.ts), after the key so that it knows whose
 * share to charge; the key's rate limit; graphql-upload (multipart, with the file size and count
 * limits); the JSON body parser (its limit is what bounds base64 images), which measures the
 * body's shape as it arrives and refuses it before parsing (src/server/jsonBody.ts); the gateway's batch size, trusted
 * documents and query limits; Apollo.
 *
 * /console is the operator console's static files (src/server/console.ts), a client of /graphql.
 */
import { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { unwrapResolverError } from '@apollo/server/errors';
import express, { ErrorRequestHandler, RequestHandler } from 'express';
import { GraphQLError, GraphQLFormattedError } from 'graphql';
import { randomUUID } from 'crypto';
import * as http from 'http';
import type { AddressInfo } from 'net';
import { Gateway } from '../gateway/gateway';
import { mountMetrics, MetricsEndpoint } from '../gateway/metricsEndpoint';
import { onlyQueriesAndMutations } from '../gateway/operationTypes';
import { PerKeyDocumentCache } from '../gateway/persistedQueries';
import { QueryLimiter } from '../gateway/queryLimits';
import { buildApiSchema } from '../schema';
import { logger } from '../util/logger';
import { openJobs, type OpenedJobs } from '../jobs/openJobs';
import type { ServerConfig } from './config';
import { Admission, deadlineOf, holdPlaceUntilSettled } from './admission';
import { ConnectionGuard } from './connectionGuard';
import { CONSOLE_PATH, mountConsole } from './console';
import { bodyImagesOf, jsonBody } from './jsonBody';
import { jsonShapeLimits } from './jsonShape';
import { httpStatusOf, requestError, sendRefusal, unavailable } from '../request/errors';
import { Metrics } from '../request/metrics';
import type { ApiContext } from './operations';
import { RequestImages } from './requestImages';
import { ScreeningService } from './service';
import { uploadMiddleware } from './upload';

export interface RunningServer {
  readonly port: number;
  readonly url: string;
  /** The port of /metrics' own listener, when ADVSIEVE_METRICS gives it one. */
  readonly metricsPort: number | undefined;
  /** Stops accepting, lets requests in flight and queued batches finish, stops the workers. */
  shutdown(reason: string): Promise<void>;
  /** Resolves once a shutdown has finished. */
  readonly closed: Promise<void>;
}

/** Apollo's CSRF rule (preventCsrf.ts), applied to multipart requests before their files are read. */
const PREFLIGHT_HEADERS = ['x-apollo-operation-name', 'apollo-require-preflight'];

function csrfGuard(metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    if (req.is('multipart/form-data') && !PREFLIGHT_HEADERS.some((h) => (req.get(h) ?? '').length > 0)) {
      metrics.requests.inc({ operation: 'none', outcome: 'BAD_REQUEST' });
      sendRefusal(res, [
        requestError(
          'BAD_REQUEST',
          'This operation has been blocked as a potential Cross-Site Request Forgery (CSRF). Multipart requests must send a non-empty ' +
            `header ${PREFLIGHT_HEADERS.join(' or ')} (e.g. 'Apollo-Require-Preflight: true').`,
          400,
        ),
      ]);
      return;
    }
    next();
  };
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The client's `x-request-id` when it is a sane token (it is logged and audited as given), else
 * undefined. Never the request's own id: a client may repeat another request's id, so the server's
 * UUID is what identifies a request, and the client's is kept beside it.
 */
export function clientRequestIdOf(header: string | undefined): string | undefined {
  return header && REQUEST_ID.test(header) ? header : undefined;
}

/** Express 5 leaves req.body unset when no parser ran (a GET); Apollo's middleware wants it present. */
const bodyPresent: RequestHandler = (req, _res, next) => {
  if (!('body' in req)) (req as { body?: unknown }).body = undefined;
  next();
};

/** Transport-level errors (graphql-upload, the JSON parser) as GraphQL error bodies. */
function errorHandler(production: boolean, metrics: Metrics): ErrorRequestHandler {
  return (err, _req, res, next) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    const status = httpStatusOf(err) ?? 500;
    const code = status === 413 ? 'PAYLOAD_TOO_LARGE' : status < 500 ? 'BAD_REQUEST' : 'INTERNAL_SERVER_ERROR';
    if (status >= 500) logger.error({ err }, 'request failed');
    metrics.requests.inc({ operation: 'none', outcome: code });
    const message = status >= 500 && production ? 'internal server error' : (err as Error).message;
    sendRefusal(res, [requestError(code, message, status)]);
  };
}

/**
 * Who sees /health/ready's details (worker counts, the audit backend): with API keys configured,
 * a request presenting a valid key (any scope); without keys, anyone outside production. Everyone
 * else gets `{status}`: an orchestrator needs no more, and the details map the deployment.
 */
function healthDetailsFor(req: express.Request, gateway: Gateway, production: boolean): boolean {
  return gateway.keys.enabled ? gateway.presentsValidKey(req) : !production;
}

/**
 * graphql-js's "Did you mean …?" hints (an enum value, a type, an argument: `FGMS` → `FGSM`), in
 * validation errors and in variable coercion errors alike: in production they hand out the schema
 * that introspection being off hides. Field suggestions are also masked by armor (queryLimits.ts).
 */
export function withoutSuggestions(message: string): string {
  return message.replace(/\s*Did you mean [^]*$/, '');
}

/**
 * Errors Apollo raises before execution with a 4xx status and no code of their own (it sends those
 * as INTERNAL_SERVER_ERROR): BAD_REQUEST, the client's to fix.
 */
function clientErrorCode(formatted: GraphQLFormattedError, original: unknown): GraphQLFormattedError {
  const status = (original as GraphQLError | undefined)?.extensions?.http as { status?: number } | undefined;
  if (formatted.extensions?.code !== 'INTERNAL_SERVER_ERROR' || !(original instanceof GraphQLError)) return formatted;
  if (!(status?.status !== undefined && status.status >= 400 && status.status < 500)) return formatted;
  return { ...formatted, extensions: { ...formatted.extensions, code: 'BAD_REQUEST' } };
}

/** Unexpected errors are logged with their stack; in production their message is not sent. */
function formatError(production: boolean) {
  return (raw: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = unwrapResolverError(error);
    const coded = clientErrorCode(raw, original);
    const formatted = production ? { ...coded, message: withoutSuggestions(coded.message) } : coded;
    const expected = original instanceof GraphQLError || formatted.extensions?.code !== 'INTERNAL_SERVER_ERROR';
    if (expected) return formatted;
    logger.error({ err: original }, 'resolver failed');
    if (!production) return formatted;
    return { message: 'internal server error', path: formatted.path, extensions: { code: 'INTERNAL_SERVER_ERROR' } };
  };
}

function listen(server: http.Server, port: number, host: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export async function startServer(config: ServerConfig): Promise<RunningServer> {
  const metrics = new Metrics();
  const gateway = new Gateway(config.gateway, metrics, config); // a bad trusted-documents manifest stops the start here
  gateway.logSettings();
  const app = express();
  app.disable('x-powered-by');
  let service: ScreeningService | undefined;
  let graphql: RequestHandler | undefined;
  let stopping = false;
  const admission = new Admission(config, metrics, (req, res) => gateway.clientOf(req, res));

  app.get('/health/live', (_req, res) => {
    res.json({ status: 'live' });
  });
  app.get('/health/ready', (req, res) => {
    const started = !stopping && graphql !== undefined && service?.ready === true;
    // Saturated: no request could be admitted now; a load balancer sends elsewhere meanwhile.
    const saturated = started && admission.saturated;
    const ready = started && !saturated;
    const pools = service?.models.map((m) => m.engine.pool) ?? [];
    const status = ready ? 'ready' : stopping ? 'stopping' : saturated ? 'saturated' : 'starting';
    res.status(ready ? 200 : 503).json(
      healthDetailsFor(req, gateway, config.production)
        ? {
            status,
            requestsInFlight: admission.requestsInFlight,
            // Summed over the models; `models` has each one's.
            workers: pools.reduce((n, p) => n + p.size, 0),
            readyWorkers: pools.reduce((n, p) => n + p.readyWorkers, 0),
            models: service?.models.map((m) => ({
              id: m.id,
              workers: m.engine.pool.size,
              readyWorkers: m.engine.pool.readyWorkers,
            })),
            audit: service?.audit.kind ?? null, // sqlite, postgres or off (src/audit/)
          }
        : { status },
    );
  });
  const metricsEndpoint: MetricsEndpoint = await mountMetrics(app, gateway, metrics.registry);
  app.use('/graphql', (req, res, next) => {
    if (graphql) graphql(req, res, next);
    else sendRefusal(res, [unavailable('the service is starting; retry when /health/ready says so')]);
  });
  mountConsole(app);
  app.use(errorHandler(config.production, metrics));

  // Receiving a request counts against its deadline too: a body that trickles in (slow loris) is
  // cut off with 408 once ADVSIEVE_REQUEST_TIMEOUT_MS has passed (Node checks every second).
  const httpServer = http.createServer(
    {
      requestTimeout: config.requestTimeoutMs,
      headersTimeout: Math.min(60_000, config.requestTimeoutMs),
      connectionsCheckingInterval: 1000,
    },
    app,
  );
  // Node's default (5 s) races the client's own idle timeout: see ServerConfig.keepAliveTimeoutMs.
  httpServer.keepAliveTimeout = config.keepAliveTimeoutMs;
  // Connections held open must not exhaust descriptors nor lock other clients out (connectionGuard.ts).
  const connections = new ConnectionGuard(httpServer, {
    maxConnections: config.maxConnections,
    maxPerAddress: config.maxConnectionsPerAddress,
  });
  metrics.observeConnections(() => connections.stats());
  const port = await listen(httpServer, config.port, config.host);
  const origin = `http://${config.host ?? 'localhost'}:${port}`;
  const url = `${origin}/graphql`;
  const consoleUrl = `${origin}${CONSOLE_PATH}`;
  logger.info(
    { port, url, console: consoleUrl },
    `listening on ${url} (ready when /health/ready says so); operator console on ${consoleUrl}`,
  );

  let apollo: ApolloServer<ApiContext> | undefined;
  let jobs: OpenedJobs | undefined;
  try {
    service = await ScreeningService.start(config, metrics);
    // With REDIS_URL: screening jobs, and (unless ADVSIEVE_JOB_CONSUMER=off) this replica screens their batches.
    jobs = await openJobs(service, config.jobs.consume);
    const store = jobs?.store;
    const served = service.models.map((m) => m.id);
    if (store) metrics.observeJobQueue(() => store.batchCounts(served));
    const schema = await buildApiSchema();
    const queryLimiter = new QueryLimiter(schema, config.gateway.queryLimits, config.production);
    apollo = new ApolloServer<ApiContext>({
      schema,
      csrfPrevention: true,
      introspection: !config.production,
      // A JSON array of operations; the gateway refuses more than ADVSIEVE_MAX_BATCHED_OPERATIONS.
      allowBatchedHttpRequests: true,
      includeStacktraceInErrorResponses: !config.production,
      // We stop on signals ourselves, after the batches drain (Apollo would re-raise the signal).
      stopOnTerminationSignals: false,
      formatError: formatError(config.production),
      // APQ: off in production unless trusted documents are configured; a cache per API key (src/gateway/persistedQueries.ts).
      persistedQueries: config.gateway.apq ? { cache: new PerKeyDocumentCache() } : false,
      plugins: [
        ApolloServerPluginDrainHttpServer({ httpServer, stopGracePeriodMillis: config.shutdownTimeoutMs }),
        metrics.plugin(),
        ...queryLimiter.plugins,
        onlyQueriesAndMutations(),
        ...(config.production ? [ApolloServerPluginLandingPageDisabled()] : []),
      ],
    });
    await apollo.start();
    const upload = await uploadMiddleware({ maxFileSize: config.maxFileBytes, maxFiles: config.maxFiles });
    const ready = service;
    const router = express.Router();
    router.use(
      csrfGuard(metrics),
      gateway.authenticate,
      admission.middleware,
      gateway.admit,
      upload,
      // Never inflates: admission refuses compressed bodies (their length bounds nothing).
      jsonBody(
        config.maxBodyBytes,
        jsonShapeLimits(config.maxImages, config.gateway.maxBatchedOperations),
        ready.bodyParser,
        metrics,
      ),
      bodyPresent,
      gateway.checkOperations(queryLimiter),
      // The request keeps its admission place until Apollo has settled, not only until its client leaves.
      holdPlaceUntilSettled(
        expressMiddleware(apollo, {
          context: async ({ req, res }) => {
            const requestId = randomUUID();
            const clientRequestId = clientRequestIdOf(req.get('x-request-id'));
            res.set('x-request-id', requestId);
            if (clientRequestId !== undefined) res.set('x-client-request-id', clientRequestId);
            const deadline = deadlineOf(res, config.requestTimeoutMs);
            return {
              service: ready,
              images: new RequestImages(ready, deadline, gateway.imageChargeFor(res), bodyImagesOf(req)),
              principal: gateway.principalOf(res),
              jobs: jobs?.store,
              requestId,
              clientRequestId,
              deadline,
            };
          },
        }),
      ),
    );
    graphql = router;
  } catch (err) {
    await new Promise((resolve) => httpServer.close(resolve));
    await metricsEndpoint.close();
    await jobs?.close();
    await service?.close();
    await gateway.close();
    throw err;
  }

  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  let shutdownPromise: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    shutdownPromise ??= (async () => {
      stopping = true;
      const start = performance.now();
      logger.info({ reason }, `shutting down (${reason}): finishing requests in flight`);
      await apollo!.stop(); // stops accepting, waits for requests in flight (up to the grace period)
      await jobs?.close(); // the job batches being screened finish; the rest wait in Redis for another consumer
      await service!.close(); // queued batches run, then the workers stop
      await metricsEndpoint.close();
      await gateway.close();
      logger.info({ ms: Math.round(performance.now() - start) }, 'shut down');
      resolveClosed();
    })();
    return shutdownPromise;
  };
  return { port, url, metricsPort: metricsEndpoint.port, shutdown, closed };
}
