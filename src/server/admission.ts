/**
 * Admission to /graphql, before any byte of the body is read: at most `maxConcurrentRequests`
 * requests in flight, the others refused at once with OVERLOADED (503, Retry-After). Memory for
 * request bodies is thereby bounded by that number times the largest body a request may have
 * (docs/api.md says how much). Each admitted request's deadline is set here, from its arrival, so
 * that the time its body took to arrive counts against it (src/server/requestImages.ts keeps it).
 * A JSON body whose Content-Length is over ADVSIEVE_MAX_BODY_BYTES is refused from that header,
 * and its connection closed: the JSON parser would otherwise read and discard it all (up to the
 * request timeout) before answering.
 */
import type { RequestHandler, Response } from 'express';
import type { Metrics } from './metrics';

export interface AdmissionOptions {
  readonly maxConcurrentRequests: number;
  readonly requestTimeoutMs: number;
  readonly maxBodyBytes: number;
}

/** Seconds a refused client is told to wait: requests last milliseconds to a few seconds here. */
const RETRY_AFTER_S = 1;

export function admission(opts: AdmissionOptions, metrics: Metrics): RequestHandler {
  let inFlight = 0;
  metrics.observeAdmission(() => inFlight);
  return (req, res, next) => {
    const declared = Number(req.get('content-length') ?? 0);
    if (declared > opts.maxBodyBytes && !req.is('multipart/form-data')) {
      metrics.requests.inc({ operation: 'none', outcome: 'PAYLOAD_TOO_LARGE' });
      res
        .status(413)
        .set('connection', 'close')
        .json({
          errors: [
            {
              message: `the body declares ${declared} bytes; at most ${opts.maxBodyBytes} are accepted`,
              extensions: { code: 'PAYLOAD_TOO_LARGE', limit: 'maxBodyBytes', limitValue: opts.maxBodyBytes },
            },
          ],
        });
      return;
    }
    if (inFlight >= opts.maxConcurrentRequests) {
      metrics.requests.inc({ operation: 'none', outcome: 'OVERLOADED' });
      // The body is left unread; Node discards it without keeping it.
      res
        .status(503)
        .set('retry-after', String(RETRY_AFTER_S))
        .json({
          errors: [
            {
              message: `${inFlight} requests are in flight, the most this instance takes (ADVSIEVE_MAX_CONCURRENT_REQUESTS); retry after ${RETRY_AFTER_S} s`,
              extensions: {
                code: 'OVERLOADED',
                retryAfterMs: RETRY_AFTER_S * 1000,
                limit: 'maxConcurrentRequests',
                limitValue: opts.maxConcurrentRequests,
              },
            },
          ],
        });
      return;
    }
    inFlight++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      inFlight--;
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
