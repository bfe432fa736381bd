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
 * length). A request without a Content-Length (chunked) is charged the largest body it may have.
 * A request that could never fit is PAYLOAD_TOO_LARGE; one that does not fit now, OVERLOADED.
 */
import type { RequestHandler, Response } from 'express';
import type { Metrics } from './metrics';

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

function refuse(res: Response, status: number, code: string, message: string, extensions: object): void {
  res.status(status).json({ errors: [{ message, extensions: { code, ...extensions } }] });
}

export function admission(opts: AdmissionOptions, metrics: Metrics): RequestHandler {
  let inFlight = 0;
  let inFlightBytes = 0;
  metrics.observeAdmission(() => inFlight);
  const overloaded = (res: Response, message: string, limit: string, limitValue: number) => {
    metrics.requests.inc({ operation: 'none', outcome: 'OVERLOADED' });
    res.set('retry-after', String(RETRY_AFTER_S));
    refuse(res, 503, 'OVERLOADED', `${message}; retry after ${RETRY_AFTER_S} s`, {
      retryAfterMs: RETRY_AFTER_S * 1000,
      limit,
      limitValue,
    });
  };
  const tooLarge = (res: Response, message: string, limit: string, limitValue: number) => {
    metrics.requests.inc({ operation: 'none', outcome: 'PAYLOAD_TOO_LARGE' });
    res.set('connection', 'close');
    refuse(res, 413, 'PAYLOAD_TOO_LARGE', message, { limit, limitValue });
  };
  return (req, res, next) => {
    const length = req.get('content-length');
    const multipart = Boolean(req.is('multipart/form-data'));
    const declared = length === undefined ? undefined : Number(length) || 0;
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
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      inFlight--;
      inFlightBytes -= charged;
    };
    res.once('finish', release);
    res.once('close', release);
    res.locals.deadline = performance.now() + opts.requestTimeoutMs;
    next();
  };
}

/** The request's deadline (a performance.now() time) as admission set it; a fresh one if it did not run. */
export function deadlineOf(res: Response, requestTimeoutMs: number): number {
  const d = res.locals.deadline as unknown;
  return typeof d === 'number' ? d : performance.now() + requestTimeoutMs;
}
