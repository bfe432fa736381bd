/**
 * Prometheus metrics (prom-client), on a registry of the service's own so that two services in one
 * process (tests, the benchmark) never share counters. Names follow Prometheus' conventions: base
 * units (seconds), `_total` for counters. Label values are bounded: operations are the schema's
 * root fields, outcomes are `ok` or an error code.
 */
import type { ApolloServerPlugin, GraphQLRequestContext } from '@apollo/server';
import { Kind, type OperationDefinitionNode } from 'graphql';
import * as tf from '@tensorflow/tfjs';
import * as client from 'prom-client';
import type { BatchInfo } from '../engine/batcher';
import type { Engine } from '../engine/engine';
import { logger } from '../util/logger';
import type { RequestContext } from './context';

/** Detector scores are z-score-like (clean hold-out: roughly −9 … 7, thresholds near 1–3). */
const SCORE_BUCKETS = [-8, -4, -2, -1, 0, 0.5, 1, 1.5, 2, 2.5, 3, 4, 6, 8, 12, 20];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
const WAIT_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const COMPUTE_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class Metrics {
  readonly registry = new client.Registry();
  readonly requests: client.Counter<'operation' | 'outcome'>;
  readonly images: client.Counter<'model' | 'operation' | 'outcome'>;
  readonly flagged: client.Counter<'model'>;
  readonly batchSize: client.Histogram<'model'>;
  readonly queueWait: client.Histogram<'model'>;
  readonly compute: client.Histogram<'model'>;
  readonly detectorScore: client.Histogram<'model' | 'detector'>;
  readonly requestSeconds: client.Histogram<'operation'>;
  /** Each model's engine, by model id: the per-model gauges read them at each scrape. */
  private readonly engines = new Map<string, Engine>();

  constructor() {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry, prefix: 'advsieve_' });
    this.requests = new client.Counter({
      name: 'advsieve_requests_total',
      help: 'GraphQL requests by root field and outcome (ok or the first error code)',
      labelNames: ['operation', 'outcome'],
      registers,
    });
    this.images = new client.Counter({
      name: 'advsieve_images_total',
      help: 'Images answered, by model, root field and outcome (ok or the image error code)',
      labelNames: ['model', 'operation', 'outcome'],
      registers,
    });
    this.flagged = new client.Counter({
      name: 'advsieve_images_flagged_total',
      help: 'Images screened whose combined score was above its threshold, by model',
      labelNames: ['model'],
      registers,
    });
    this.batchSize = new client.Histogram({
      name: 'advsieve_engine_batch_size',
      help: 'Images per engine batch, by model',
      labelNames: ['model'],
      buckets: BATCH_BUCKETS,
      registers,
    });
    this.queueWait = new client.Histogram({
      name: 'advsieve_engine_queue_wait_seconds',
      help: 'Per image: time from submission to its batch leaving the queue, by model',
      labelNames: ['model'],
      buckets: WAIT_BUCKETS,
      registers,
    });
    this.compute = new client.Histogram({
      name: 'advsieve_engine_batch_compute_seconds',
      help: 'Per batch: time on a worker, round trip included, by model',
      labelNames: ['model'],
      buckets: COMPUTE_BUCKETS,
      registers,
    });
    this.detectorScore = new client.Histogram({
      name: 'advsieve_detector_score',
      help: 'Scores of screened images, per model and detector (and combined)',
      labelNames: ['model', 'detector'],
      buckets: SCORE_BUCKETS,
      registers,
    });
    this.requestSeconds = new client.Histogram({
      name: 'advsieve_request_duration_seconds',
      help: 'GraphQL request time, by root field',
      labelNames: ['operation'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
  }

  /**
   * Gauges read from each model's engine at each scrape, labelled by model: live tensors in the
   * workers (as each reported with its last batch), ready workers, and the counts of worker deaths
   * survived. The soak benchmark watches the tensor gauges for leaks.
   */
  observeEngine(model: string, engine: Engine): void {
    const first = this.engines.size === 0;
    this.engines.set(model, engine);
    this.flagged.inc({ model }, 0); // a model that never flags still shows its 0
    if (!first) return;
    const perModel = (name: string, help: string, read: (e: Engine) => number) =>
      this.labelledGauge(name, help, () => [...this.engines].map(([id, e]) => [{ model: id }, read(e)]));
    perModel(
      'advsieve_worker_tensors',
      'Live tfjs tensors, summed over the inference workers',
      (e) => e.pool.tensorStats().numTensors,
    );
    perModel(
      'advsieve_worker_tensor_bytes',
      'Bytes held by live tfjs tensors, summed over the inference workers',
      (e) => e.pool.tensorStats().numBytes,
    );
    this.gauge('advsieve_main_thread_tensors', 'Live tfjs tensors on the main thread', () => tf.memory().numTensors);
    perModel('advsieve_workers_ready', 'Inference workers that have loaded the model', (e) => e.pool.readyWorkers);
    perModel(
      'advsieve_worker_replacements',
      'Inference workers started to replace dead ones since start',
      (e) => e.pool.replacedWorkers,
    );
    perModel(
      'advsieve_engine_retried_batches',
      'Batches run again after their worker died, since start',
      (e) => e.stats().retriedBatches,
    );
    perModel(
      'advsieve_engine_expired_images',
      'Images dropped unrun from the engine queue because their request’s deadline passed, since start',
      (e) => e.stats().expired,
    );
  }

  /**
   * The decode processes (src/images/decodePool.ts): decodes running, and processes killed for their
   * budget or died on an image since start. Images refused this way are also counted by outcome
   * (DECODE_TIMEOUT, DECODE_FAILED) in advsieve_images_total.
   */
  observeDecodePool(pool: { readonly active: number; readonly timeouts: number; readonly crashes: number }): void {
    this.gauge('advsieve_decodes_active', 'Decodes running in the decode processes now', () => pool.active);
    this.gauge(
      'advsieve_decode_processes_killed',
      'Decode processes killed because a decode ran past its budget, since start',
      () => pool.timeouts,
    );
    this.gauge(
      'advsieve_decode_processes_crashed',
      'Decode processes that died while decoding an image, since start',
      () => pool.crashes,
    );
  }

  /** The HTTP connections (src/server/connectionGuard.ts): open now, and those closed by its limits since start. */
  observeConnections(
    read: () => {
      readonly open: number;
      readonly underPressure: boolean;
      readonly refusedPerAddress: number;
      readonly refusedFull: number;
      readonly evicted: number;
    },
  ): void {
    this.gauge('advsieve_connections_open', 'HTTP connections open now', () => read().open);
    this.gauge(
      'advsieve_connections_under_pressure',
      '1 while three quarters of ADVSIEVE_MAX_CONNECTIONS are open (short idle and header timeouts)',
      () => Number(read().underPressure),
    );
    new client.Gauge({
      name: 'advsieve_connections_closed_by_limit',
      help: 'Connections closed by the connection limits since start: refused per address, refused when full, evicted for another address',
      labelNames: ['reason'],
      registers: [this.registry],
      collect() {
        const s = read();
        this.set({ reason: 'per_address' }, s.refusedPerAddress);
        this.set({ reason: 'full' }, s.refusedFull);
        this.set({ reason: 'evicted' }, s.evicted);
      },
    });
  }

  /** A gauge read at each scrape. */
  private readonly gauge = (name: string, help: string, read: () => number): void => {
    new client.Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  };

  /** A gauge of labelled values, read at each scrape. */
  private readonly labelledGauge = (
    name: string,
    help: string,
    read: () => Array<[Record<'model', string>, number]>,
  ): void => {
    new client.Gauge({
      name,
      help,
      labelNames: ['model'],
      registers: [this.registry],
      collect() {
        for (const [labels, value] of read()) this.set(labels, value);
      },
    });
  };

  /**
   * The screening jobs' queues (src/jobs/), one a model served here: their batches by state, read
   * from Redis at each scrape — the queue depth an autoscaler scales workers on. Redis away: the
   * last values stay.
   */
  observeJobQueue(counts: () => Promise<ReadonlyArray<[string, Record<string, number>]>>): void {
    new client.Gauge({
      name: 'advsieve_job_batches',
      help: "Screening-job batches in a model's Redis queue by state (waiting, active, delayed, failed); a batch is ADVSIEVE_JOB_BATCH images",
      labelNames: ['model', 'state'],
      registers: [this.registry],
      async collect() {
        const read = await counts().catch(() => []);
        for (const [model, byState] of read)
          for (const [state, n] of Object.entries(byState)) this.set({ model, state }, n);
      },
    });
  }

  /** The admission middleware's count of requests in flight. */
  observeAdmission(inFlight: () => number): void {
    this.gauge('advsieve_requests_in_flight', 'GraphQL requests admitted and not yet answered', inFlight);
  }

  /** A model's engine's onBatch. */
  observeBatch = (info: BatchInfo, model: string): void => {
    this.batchSize.observe({ model }, info.size);
    for (const w of info.queueWaitMs) this.queueWait.observe({ model }, w / 1000);
    this.compute.observe({ model }, info.computeMs / 1000);
  };

  /** Counts requests by outcome, times them and logs each (at debug level). */
  plugin(): ApolloServerPlugin {
    const { requests, requestSeconds } = this;
    return {
      async requestDidStart() {
        const start = performance.now();
        return {
          async willSendResponse(ctx: GraphQLRequestContext<object>) {
            const operation = rootField(ctx.operation);
            const body = ctx.response.body;
            const errors = body?.kind === 'single' ? body.singleResult.errors : undefined;
            const outcome = errors?.length ? String(errors[0].extensions?.code ?? 'INTERNAL_SERVER_ERROR') : 'ok';
            requests.inc({ operation, outcome });
            const ms = performance.now() - start;
            requestSeconds.observe({ operation }, ms / 1000);
            // The request's ids (src/request/context.ts): the service's UUID and the client's own, when sane.
            const { requestId, clientRequestId } = (ctx.contextValue ?? {}) as Partial<RequestContext>;
            logger.debug(
              { operation, outcome, ms: Math.round(ms * 10) / 10, requestId, clientRequestId },
              `${operation} ${outcome}`,
            );
          },
        };
      },
    };
  }
}

/** The first root field of the operation (a schema name: bounded), or `none` when it did not parse. */
function rootField(op: OperationDefinitionNode | undefined): string {
  const first = op?.selectionSet.selections.find((s) => s.kind === Kind.FIELD);
  return first && first.kind === Kind.FIELD ? first.name.value : 'none';
}
