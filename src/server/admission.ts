/**
 * Admission to /graphql, before any byte of the body is read: at most `maxConcurrentRequests`
 * requests in flight, the others refused at once with OVERLOADED (503, Retry-After). Memory for
 * request bodies is thereby bounded by that number times the largest body a request may have
 * (docs/api.md says how much). Each admitted request's deadline is set here, from its arrival, so
 * that the time its body took to arrive counts against it (src/server/requestImages.ts keeps it).
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
 * A request holds its place (its count and its bytes) until its response has ended AND the work
 * started for it has settled: the GraphQL handler, wrapped in `holdPlaceUntilSettled`, keeps going
 * after a client hangs up (until the request's deadline at most), and its body, decoded images and
 * queued inference are still in memory meanwhile. A request whose client is gone before that
 * handler starts does not start it.
 */
import type { RequestHandler, Response } from 'express';
import type { Metrics } from '../request/metrics';
import { payloadTooLarge, requestError, retryAfter, sendRefusal } from '../request/errors';

export interface AdmissionOptions {
  readonly maxConcurrentRequests: number;
  readonly maxInflightBytes: number;
  /** The largest multipart request the upload limits allow: what a chunked multipart request is charged. */
  readonly maxFiles: number;
  readonly maxFileBytes: number;
  readonly requestTimeoutMs: number;
  readonly maxBodyBytes: number;
}

/** Seconds a refused client is told to wait: requests last milliseconds to a few seconds here. */
const RETRY_AFTER_S = 1;

/** res.locals key of the request's place (see holdPlaceUntilSettled). */
const PLACE = 'admissionPlace';

interface Place {
  /** The response has ended (sent, or the connection closed). */
  readonly ended: boolean;
  /** Keeps the place until the returned function is called (at most once counts). */
  hold(): () => void;
}

export function admission(opts: AdmissionOptions, metrics: Metrics): RequestHandler {
  let inFlight = 0;
  let inFlightBytes = 0;
  metrics.observeAdmission(() => inFlight);
  const overloaded = (res: Response, message: string, limit: string, limitValue: number) => {
    metrics.requests.inc({ operation: 'none', outcome: 'OVERLOADED' });
    sendRefusal(res, [
      requestError(
        'OVERLOADED',
        `${message}; retry after ${RETRY_AFTER_S} s`,
        503,
        { retryAfterMs: RETRY_AFTER_S * 1000, limit, limitValue },
        [retryAfter(RETRY_AFTER_S * 1000)],
      ),
    ]);
  };
  const tooLarge = (res: Response, message: string, limit: string, limitValue: number) => {
    metrics.requests.inc({ operation: 'none', outcome: 'PAYLOAD_TOO_LARGE' });
    res.set('connection', 'close');
    sendRefusal(res, [payloadTooLarge(message, { name: limit, value: limitValue })]);
  };
  return (req, res, next) => {
    const encoding = (req.get('content-encoding') ?? 'identity').trim().toLowerCase().slice(0, 100);
    if (encoding !== 'identity') {
      metrics.requests.inc({ operation: 'none', outcome: 'UNSUPPORTED_MEDIA_TYPE' });
      res.set('connection', 'close'); // the body is left unread
      sendRefusal(res, [
        requestError(
          'UNSUPPORTED_MEDIA_TYPE',
          `Content-Encoding '${encoding}' is not accepted; send the body uncompressed`,
          415,
          { contentEncoding: encoding },
        ),
      ]);
      return;
    }
    const length = req.get('content-length');
    const multipart = Boolean(req.is('multipart/form-data'));
    const chunked = req.get('transfer-encoding') !== undefined;
    // Neither header: no body at all (a GET, most often).
    const declared = length === undefined ? (chunked ? undefined : 0) : Number(length) || 0;
    if (declared !== undefined && declared > opts.maxBodyBytes && !multipart) {
      tooLarge(
        res,
        `the body declares ${declared} bytes; at most ${opts.maxBodyBytes} are accepted`,
        'maxBodyBytes',
        opts.maxBodyBytes,
      );
      return;
    }
    // A chunked body is charged the largest it may be: the JSON limit, or every file at its limit.
    const charged = declared ?? (multipart ? opts.maxFiles * opts.maxFileBytes : opts.maxBodyBytes);
    if (charged > opts.maxInflightBytes) {
      tooLarge(
        res,
        `the body may be ${charged} bytes; the bodies in flight may not exceed ${opts.maxInflightBytes} (ADVSIEVE_MAX_INFLIGHT_BYTES)`,
        'maxInflightBytes',
        opts.maxInflightBytes,
      );
      return;
    }
    if (inFlight >= opts.maxConcurrentRequests) {
      // The body is left unread; Node discards it without keeping it.
      overloaded(
        res,
        `${inFlight} requests are in flight, the most this instance takes (ADVSIEVE_MAX_CONCURRENT_REQUESTS)`,
        'maxConcurrentRequests',
        opts.maxConcurrentRequests,
      );
      return;
    }
    if (inFlightBytes + charged > opts.maxInflightBytes) {
      overloaded(
        res,
        `${inFlightBytes} bytes of request bodies are in flight and ${charged} more would pass ADVSIEVE_MAX_INFLIGHT_BYTES`,
        'maxInflightBytes',
        opts.maxInflightBytes,
      );
      return;
    }
    inFlight++;
    inFlightBytes += charged;
    // Holders of the place: the response until it ends, and each piece of work held for it.
    let holders = 1;
    let ended = false;
    const letGo = () => {
      if (--holders > 0) return;
      inFlight--;
      inFlightBytes -= charged;
    };
    const onEnd = () => {
      if (ended) return;
      ended = true;
      letGo();
    };
    res.once('finish', onEnd);
    res.once('close', onEnd);
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
    res.locals.deadline = performance.now() + opts.requestTimeoutMs;
    next();
  };
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
