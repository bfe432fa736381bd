/**
 * Admission to /graphql, before any byte of the body is read: at most `maxConcurrentRequests`
 * requests in flight, the others refused at once with OVERLOADED (503, Retry-After). Memory for
 * request bodies is thereby bounded by that number times the largest body a request may have
 * (docs/api.md says how much). Each admitted request's deadline is set here, from its admission,
 * so that the time its body took to arrive counts against it (src/server/requestImages.ts keeps it).
 * A JSON body whose Content-Length is over ADVSIEVE_MAX_BODY_BYTES is refused from that header,
 * and its connection closed: the JSON parser would otherwise read and discard it all (up to the
 * request timeout) before answering.
 *
 * Counting requests alone bounds memory only by requests × the largest body (gigabytes with the
 * default limits), so admission also keeps a byte budget: the Content-Lengths of the requests in
 * flight add up to at most `maxInflightBytes` (Node's parser never delivers more than the declared
 * length). A chunked request (Transfer-Encoding, no Content-Length) is charged the largest body it
 * may have; a request with neither header has no body (RFC 9112 §6.3) and is charged nothing.
 * A request that could never fit is PAYLOAD_TOO_LARGE; one that does not fit now, OVERLOADED.
 * A compressed body (Content-Encoding other than identity) is refused, UNSUPPORTED_MEDIA_TYPE
 * (415): its length says nothing of what it inflates to, and base64 or multipart images barely
 * compress, so accepting it would only open the budget to zip bombs.
 *
 * Fair shares. The global limits alone let one client take everything: one request declaring the
 * whole byte budget and trickling its body blocked every POST of every client for the request
 * timeout. So each client (its API key, else its address: `clientOf`) also has a share of both
 * (`maxConcurrentRequestsPerClient`, `maxInflightBytesPerClient`), a single request may never be
 * charged more than the client's share (PAYLOAD_TOO_LARGE), and a declared body that arrives at
 * less than half the pace that would fill it by the deadline is cut off (408) after a grace
 * period: a reservation must be filled, not merely held.
 *
 * Connections. Node parses pipelined requests at once and emits each, but queues their responses
 * behind the first; a queued response gets neither 'finish' nor 'close' when its connection
 * closes, so a place tied to its response alone leaked for ever (256 pipelined requests then a
 * close was a permanent outage). Hence:
 * - at most one admitted request per connection: a request pipelined behind an admitted one waits,
 *   unconsidered and its body unread, until that one's place is let go; at most
 *   MAX_PIPELINED_PER_CONNECTION may wait (beyond, the connection is closed), and when the
 *   connection closes the waiting ones are dropped, never admitted;
 * - each connection has one 'close' listener, which ends the place of its admitted request;
 * - no place outlives its request's deadline by more than HOLD_GRACE_MS: then a response not yet
 *   finished (a client that does not read it) has its connection destroyed and the place is let go.
 *
 * A request holds its place (its count and its bytes) until its response has ended AND the work
 * started for it has settled: the GraphQL handler, wrapped in `holdPlaceUntilSettled`, keeps going
 * after a client hangs up (until the request's deadline at most), and its body, decoded images and
 * queued inference are still in memory meanwhile. A request whose client is gone before that
 * handler starts does not start it.
 */
import type { Request, RequestHandler, Response } from 'express';
import type { Socket } from 'net';
import { declaredBodyBytes } from '../request/bodyLength';
import { logger } from '../util/logger';
import type { Metrics } from '../request/metrics';
import { payloadTooLarge, requestError, retryAfter, sendRefusal } from '../request/errors';

export interface AdmissionOptions {
  readonly maxConcurrentRequests: number;
  readonly maxInflightBytes: number;
  /** One client's share of the requests in flight (its key's, else its address's). */
  readonly maxConcurrentRequestsPerClient: number;
  /** One client's share of the body bytes in flight; also the most one request may be charged. */
  readonly maxInflightBytesPerClient: number;
  /** The largest multipart request the upload limits allow: what a chunked multipart request is charged. */
  readonly maxFiles: number;
  readonly maxFileBytes: number;
  readonly requestTimeoutMs: number;
  readonly maxBodyBytes: number;
}

/** Seconds a refused client is told to wait: requests last milliseconds to a few seconds here. */
const RETRY_AFTER_S = 1;

/** Requests that may wait behind the admitted one on one connection; one more closes it. */
export const MAX_PIPELINED_PER_CONNECTION = 16;

/** How long past its deadline a place may still be held (work winding down, the answer being written). */
export const HOLD_GRACE_MS = 5000;

/**
 * The body pace rule: after BODY_GRACE_MS, a declared body must have arrived at least at
 * BODY_MIN_PACE of the pace that would complete it by the request's deadline.
 */
export const BODY_GRACE_MS = 3000;
export const BODY_MIN_PACE = 0.5;
const BODY_CHECK_EVERY_MS = 500;

/** The smallest body a request worth admitting has: readiness needs at least this much budget free. */
const MIN_REQUEST_BYTES = 1024;

/** res.locals key of the request's place (see holdPlaceUntilSettled). */
const PLACE = 'admissionPlace';

interface Place {
  /** The response has ended (sent, or the connection closed). */
  readonly ended: boolean;
  /** Keeps the place until the returned function is called (at most once counts). */
  hold(): () => void;
}

/** What admission keeps per connection: its admitted request, and those pipelined behind it. */
interface Connection {
  /** Ends the admitted request's place as its connection closes; undefined when none is admitted. */
  current: (() => void) | undefined;
  waiting: Array<() => void>;
  closed: boolean;
}

/** A client's share in use. */
interface ClientUse {
  requests: number;
  bytes: number;
}

/** An admitted body still arriving, watched by the pace rule. */
interface Arriving {
  readonly req: Request;
  readonly res: Response;
  readonly declared: number;
  readonly socket: Socket;
  readonly bytesReadAtStart: number;
  readonly start: number;
}

export class Admission {
  private inFlight = 0;
  private inFlightBytes = 0;
  private readonly clients = new Map<string, ClientUse>();
  private readonly connections = new WeakMap<Socket, Connection>();
  private readonly arriving = new Set<Arriving>();
  private paceTimer: NodeJS.Timeout | undefined;

  /** `clientOf`: whose share a request is charged to (called after authentication). */
  constructor(
    private readonly opts: AdmissionOptions,
    private readonly metrics: Metrics,
    private readonly clientOf: (req: Request, res: Response) => string,
  ) {
    metrics.observeAdmission(() => this.inFlight);
  }

  /** Requests admitted and not yet let go. */
  get requestsInFlight(): number {
    return this.inFlight;
  }

  /**
   * No request could be admitted now: every place is taken, or the byte budget has not room for a
   * small body. /health/ready says so (503), so that a load balancer sends elsewhere meanwhile.
   */
  get saturated(): boolean {
    return (
      this.inFlight >= this.opts.maxConcurrentRequests ||
      this.opts.maxInflightBytes - this.inFlightBytes < Math.min(MIN_REQUEST_BYTES, this.opts.maxInflightBytes)
    );
  }

  readonly middleware: RequestHandler = (req, res, next) => {
    const socket = req.socket;
    const conn = this.connectionOf(socket);
    if (conn.closed) return; // the client is gone: nobody could read an answer
    // Never ahead of requests already waiting: their answers come first on this connection, so
    // one admitted before them would wait for them while they wait for its place.
    if (conn.current === undefined && conn.waiting.length === 0) {
      this.consider(req, res, next, conn);
      return;
    }
    if (conn.waiting.length >= MAX_PIPELINED_PER_CONNECTION) {
      // A client pipelining this far is not waiting for answers; its queue would only grow.
      logger.warn(
        { remote: socket.remoteAddress, waiting: conn.waiting.length },
        `more than ${MAX_PIPELINED_PER_CONNECTION} requests pipelined on one connection: closing it`,
      );
      socket.destroy();
      return;
    }
    conn.waiting.push(() => this.consider(req, res, next, conn));
  };

  private connectionOf(socket: Socket): Connection {
    let conn = this.connections.get(socket);
    if (!conn) {
      const c: Connection = { current: undefined, waiting: [], closed: socket.destroyed };
      // One listener per connection, however many requests it carries.
      socket.once('close', () => {
        c.closed = true;
        c.waiting = [];
        c.current?.();
      });
      this.connections.set(socket, c);
      conn = c;
    }
    return conn;
  }

  /** The next request waiting on `conn`, once nothing is admitted there. */
  private drain(conn: Connection): void {
    while (conn.current === undefined && !conn.closed && conn.waiting.length > 0) conn.waiting.shift()!();
  }

  private clientUse(client: string): ClientUse {
    let use = this.clients.get(client);
    if (!use) this.clients.set(client, (use = { requests: 0, bytes: 0 }));
    return use;
  }

  private overloaded(res: Response, message: string, limit: string, limitValue: number): void {
    this.metrics.requests.inc({ operation: 'none', outcome: 'OVERLOADED' });
    sendRefusal(res, [
      requestError(
        'OVERLOADED',
        `${message}; retry after ${RETRY_AFTER_S} s`,
        503,
        { retryAfterMs: RETRY_AFTER_S * 1000, limit, limitValue },
        [retryAfter(RETRY_AFTER_S * 1000)],
      ),
    ]);
  }

  private tooLarge(res: Response, message: string, limit: string, limitValue: number): void {
    this.metrics.requests.inc({ operation: 'none', outcome: 'PAYLOAD_TOO_LARGE' });
    res.set('connection', 'close');
    sendRefusal(res, [payloadTooLarge(message, { name: limit, value: limitValue })]);
  }

  /** Admits the request (and calls `next`) or refuses it; either way the connection's next waiting one may follow. */
  private consider(req: Request, res: Response, next: () => void, conn: Connection): void {
    const admitted = this.tryAdmit(req, res, conn);
    if (admitted) next();
    else this.drain(conn);
  }

  private tryAdmit(req: Request, res: Response, conn: Connection): boolean {
    const opts = this.opts;
    const encoding = (req.get('content-encoding') ?? 'identity').trim().toLowerCase().slice(0, 100);
    if (encoding !== 'identity') {
      this.metrics.requests.inc({ operation: 'none', outcome: 'UNSUPPORTED_MEDIA_TYPE' });
      res.set('connection', 'close'); // the body is left unread
      sendRefusal(res, [
        requestError(
          'UNSUPPORTED_MEDIA_TYPE',
          `Content-Encoding '${encoding}' is not accepted; send the body uncompressed`,
          415,
          { contentEncoding: encoding },
        ),
      ]);
      return false;
    }
    const multipart = Boolean(req.is('multipart/form-data'));
    const declared = declaredBodyBytes(req);
    if (declared !== undefined && declared > opts.maxBodyBytes && !multipart) {
      this.tooLarge(
        res,
        `the body declares ${declared} bytes; at most ${opts.maxBodyBytes} are accepted`,
        'maxBodyBytes',
        opts.maxBodyBytes,
      );
      return false;
    }
    // A chunked body is charged the largest it may be: the JSON limit, or every file at its limit.
    const charged = declared ?? (multipart ? opts.maxFiles * opts.maxFileBytes : opts.maxBodyBytes);
    if (charged > opts.maxInflightBytes) {
      this.tooLarge(
        res,
        `the body may be ${charged} bytes; the bodies in flight may not exceed ${opts.maxInflightBytes} (ADVSIEVE_MAX_INFLIGHT_BYTES)`,
        'maxInflightBytes',
        opts.maxInflightBytes,
      );
      return false;
    }
    if (charged > opts.maxInflightBytesPerClient) {
      this.tooLarge(
        res,
        `the body may be ${charged} bytes; one client's bodies in flight may not exceed ${opts.maxInflightBytesPerClient} (ADVSIEVE_MAX_INFLIGHT_BYTES_PER_CLIENT)`,
        'maxInflightBytesPerClient',
        opts.maxInflightBytesPerClient,
      );
      return false;
    }
    // The body is left unread on every refusal below; Node discards it without keeping it.
    if (this.inFlight >= opts.maxConcurrentRequests) {
      this.overloaded(
        res,
        `${this.inFlight} requests are in flight, the most this instance takes (ADVSIEVE_MAX_CONCURRENT_REQUESTS)`,
        'maxConcurrentRequests',
        opts.maxConcurrentRequests,
      );
      return false;
    }
    if (this.inFlightBytes + charged > opts.maxInflightBytes) {
      this.overloaded(
        res,
        `${this.inFlightBytes} bytes of request bodies are in flight and ${charged} more would pass ADVSIEVE_MAX_INFLIGHT_BYTES`,
        'maxInflightBytes',
        opts.maxInflightBytes,
      );
      return false;
    }
    const client = this.clientOf(req, res);
    const use = this.clients.get(client) ?? { requests: 0, bytes: 0 };
    if (use.requests >= opts.maxConcurrentRequestsPerClient) {
      this.overloaded(
        res,
        `this client has ${use.requests} requests in flight, its share (ADVSIEVE_MAX_CONCURRENT_REQUESTS_PER_CLIENT)`,
        'maxConcurrentRequestsPerClient',
        opts.maxConcurrentRequestsPerClient,
      );
      return false;
    }
    if (use.bytes + charged > opts.maxInflightBytesPerClient) {
      this.overloaded(
        res,
        `this client has ${use.bytes} bytes of request bodies in flight and ${charged} more would pass its share (ADVSIEVE_MAX_INFLIGHT_BYTES_PER_CLIENT)`,
        'maxInflightBytesPerClient',
        opts.maxInflightBytesPerClient,
      );
      return false;
    }
    this.admit(req, res, conn, client, charged, declared);
    return true;
  }

  private admit(
    req: Request,
    res: Response,
    conn: Connection,
    client: string,
    charged: number,
    declared: number | undefined,
  ): void {
    const use = this.clientUse(client);
    this.inFlight++;
    this.inFlightBytes += charged;
    use.requests++;
    use.bytes += charged;
    const deadline = performance.now() + this.opts.requestTimeoutMs;
    // Holders of the place: the response until it ends, and each piece of work held for it.
    let holders = 1;
    let ended = false;
    let released = false;
    let arriving: Arriving | undefined;
    const release = () => {
      if (released) return;
      released = true;
      clearTimeout(bound);
      if (arriving) this.arriving.delete(arriving);
      this.inFlight--;
      this.inFlightBytes -= charged;
      use.requests--;
      use.bytes -= charged;
      if (use.requests === 0) this.clients.delete(client);
      conn.current = undefined;
      // Not from within the 'finish' or 'close' that let it go: the next request starts on its own turn.
      setImmediate(() => this.drain(conn));
    };
    const letGo = () => {
      if (--holders <= 0) release();
    };
    const onEnd = () => {
      if (ended) return;
      ended = true;
      letGo();
    };
    res.once('finish', onEnd);
    res.once('close', onEnd);
    conn.current = onEnd;
    // However the request ends, its place does not outlive its deadline by more than the grace.
    const bound = setTimeout(() => {
      if (released) return;
      logger.warn(
        { remote: req.socket.remoteAddress, finished: res.writableFinished },
        `a request held its admission place ${HOLD_GRACE_MS} ms past its deadline: letting it go${res.writableFinished ? '' : ' and closing its connection'}`,
      );
      if (!res.writableFinished) req.socket.destroy();
      release();
    }, this.opts.requestTimeoutMs + HOLD_GRACE_MS);
    bound.unref();
    if (declared !== undefined && declared > 0 && !req.complete) {
      arriving = {
        req,
        res,
        declared,
        socket: req.socket,
        bytesReadAtStart: req.socket.bytesRead,
        start: performance.now(),
      };
      this.watchPace(arriving);
    }
    const place: Place = {
      get ended() {
        return ended;
      },
      hold() {
        // Only before the response ends (holders ≥ 1): the place cannot be let go twice.
        if (ended) throw new Error('admission: a place is held only while its response is open');
        holders++;
        let done = false;
        return () => {
          if (done) return;
          done = true;
          letGo();
        };
      },
    };
    res.locals[PLACE] = place;
    res.locals.deadline = deadline;
  }

  /** Watches a declared body's pace (one timer for all of them, running while any arrives). */
  private watchPace(a: Arriving): void {
    this.arriving.add(a);
    if (this.paceTimer) return;
    this.paceTimer = setInterval(() => {
      this.checkPace();
      if (this.arriving.size === 0) {
        clearInterval(this.paceTimer);
        this.paceTimer = undefined;
      }
    }, BODY_CHECK_EVERY_MS);
    this.paceTimer.unref();
  }

  /**
   * Cuts off each declared body that, past the grace, has arrived at less than BODY_MIN_PACE of
   * the pace that completes it by the deadline: 408 and the connection closed, as Node does for a
   * body still arriving at the deadline. The bytes are counted on the connection (one admitted
   * request per connection, so they are this body's, give or take the headers' last chunk).
   */
  private checkPace(): void {
    const now = performance.now();
    const timeout = this.opts.requestTimeoutMs;
    for (const a of this.arriving) {
      if (a.req.complete || a.socket.destroyed) {
        this.arriving.delete(a);
        continue;
      }
      const elapsed = now - a.start;
      if (elapsed < BODY_GRACE_MS) continue;
      const received = a.socket.bytesRead - a.bytesReadAtStart;
      const due = BODY_MIN_PACE * a.declared * Math.min(1, elapsed / timeout);
      if (received >= due) continue;
      this.arriving.delete(a);
      logger.info(
        { remote: a.socket.remoteAddress, declared: a.declared, received, ms: Math.round(elapsed) },
        'a request body arrives too slowly to fill its reservation: cut off (408)',
      );
      this.metrics.requests.inc({ operation: 'none', outcome: 'BODY_TOO_SLOW' });
      if (!a.res.headersSent) {
        a.res.writeHead(408, { connection: 'close', 'content-length': '0' });
        a.res.end(() => a.socket.destroy());
        // A client that reads nothing does not keep the connection either.
        setTimeout(() => a.socket.destroy(), 1000).unref();
      } else {
        a.socket.destroy();
      }
    }
  }
}

/**
 * Runs `handler` (Apollo's middleware, whose promise settles once the operation has run and its
 * answer is written) holding the request's admission place until that promise settles, whether or
 * not the client is still there. A client already gone: the handler is not run, nobody could read
 * its answer. Without admission in front, `handler` alone.
 */
export function holdPlaceUntilSettled(handler: RequestHandler): RequestHandler {
  return (req, res, next) => {
    const place = res.locals[PLACE] as Place | undefined;
    if (!place) return handler(req, res, next);
    if (place.ended) return;
    const done = place.hold();
    let result: ReturnType<RequestHandler>;
    try {
      result = handler(req, res, next);
    } catch (err) {
      done();
      throw err;
    }
    // Express handles a rejection of `result` itself (next(err)); this only lets the place go.
    void Promise.resolve(result).then(done, done);
    return result;
  };
}

/** The request's deadline (a performance.now() time) as admission set it; a fresh one if it did not run. */
export function deadlineOf(res: Response, requestTimeoutMs: number): number {
  const d = res.locals.deadline as unknown;
  return typeof d === 'number' ? d : performance.now() + requestTimeoutMs;
}
