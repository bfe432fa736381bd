/**
 * The JSON body parser of /graphql (in place of express.json): reads an application/json body and
 * measures its shape chunk by chunk as it arrives (src/server/jsonShape.ts), so that a body whose
 * shape would cost the main thread is refused at the first limit it passes, before the rest is
 * kept, copied into one buffer or parsed.
 *
 * What is left of a refused body: a body over a limit no client could mean to pass (the body's own
 * keys, entries or depth: a hostile shape) is not read: its connection is closed after the
 * refusal, so a body of a million keys costs its first ~100 KB, not its 12 MB (a client still
 * sending may then see the reset rather than the 413). After any other refusal (more images than
 * allowed, too many operations: a client's mistake) the rest is read and dropped, so that the
 * client sees the refusal and its connection stays usable.
 *
 * Otherwise as express.json was configured: at most ADVSIEVE_MAX_BODY_BYTES (413), never inflated
 * (admission refuses compressed bodies before this), an empty body is `{}`, and the body must be
 * an object or a list (400 otherwise, as for JSON that does not parse). JSON between systems is
 * UTF-8 (RFC 8259 §8.1): the shape is measured on UTF-8 bytes, so another charset is refused (415).
 * A large body is parsed, and its large base64 images read, off this thread (src/server/jsonBodyParser.ts);
 * those images reach the request's RequestImages through bodyImagesOf.
 */
import type { Request, RequestHandler, Response } from 'express';
import type { GraphQLError } from 'graphql';
import { payloadTooLarge, requestError, sendRefusal } from '../request/errors';
import type { Base64Reading } from '../images/base64';
import { JsonShapeLimits, JsonShapeScan } from './jsonShape';
import type { JsonBodyParser } from './jsonBodyParser';
import type { Metrics } from '../request/metrics';
import { logger } from '../util/logger';

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]+)"?/i;

/** The limits only a hostile body passes: its connection is closed rather than its rest read. */
const HOSTILE_SHAPES: readonly unknown[] = ['maxJsonKeys', 'maxJsonEntries', 'maxJsonDepth'];

/** A request's large base64 images, read with its body (src/server/jsonBodyParser.ts), by token. */
const bodyImages = new WeakMap<Request, ReadonlyMap<string, Base64Reading>>();

export function bodyImagesOf(req: Request): ReadonlyMap<string, Base64Reading> | undefined {
  return bodyImages.get(req);
}

export function jsonBody(
  maxBodyBytes: number,
  limits: JsonShapeLimits,
  parser: JsonBodyParser,
  metrics: Metrics,
): RequestHandler {
  const refuse = (res: Response, error: GraphQLError) => {
    metrics.requests.inc({ operation: 'none', outcome: String(error.extensions.code) });
    sendRefusal(res, [error]);
  };
  return (req, res, next) => {
    if ('body' in req && req.body !== undefined) return next(); // read already (multipart)
    if (!req.is('application/json')) return next();
    const charset = CHARSET.exec(req.get('content-type') ?? '')?.[1] ?? 'utf-8';
    if (!/^utf-?8$/i.test(charset)) {
      refuse(
        res,
        requestError(
          'UNSUPPORTED_MEDIA_TYPE',
          `JSON bodies are accepted in UTF-8 only; got charset '${charset.slice(0, 40)}'`,
          415,
        ),
      );
      req.resume(); // the body is dropped
      return;
    }
    readBody(req, maxBodyBytes, limits, parser, (outcome) => {
      if ('refusal' in outcome) {
        if (HOSTILE_SHAPES.includes(outcome.refusal.extensions.limit)) res.set('connection', 'close');
        req.resume(); // what has arrived (and, unless the connection closes, the rest) is read and dropped
        refuse(res, outcome.refusal);
      } else {
        req.body = outcome.body;
        if (outcome.images.size > 0) bodyImages.set(req, outcome.images);
        next();
      }
    });
  };
}

type Outcome = { body: unknown; images: ReadonlyMap<string, Base64Reading> } | { refusal: GraphQLError };

const badRequest = (message: string): Outcome => ({ refusal: requestError('BAD_REQUEST', message, 400) });

/** Reads and parses the body, or stops at the first refusal. Nothing when the client goes away. */
function readBody(
  req: Request,
  maxBodyBytes: number,
  limits: JsonShapeLimits,
  parser: JsonBodyParser,
  done: (o: Outcome) => void,
): void {
  const scan = new JsonShapeScan(limits);
  const chunks: Buffer[] = [];
  let size = 0;
  let settled = false;
  const settle = (o: Outcome | undefined) => {
    if (settled) return;
    settled = true;
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('error', onError);
    req.off('aborted', onAborted);
    req.pause(); // until `done` says whether the rest is read
    if (o) done(o);
  };
  const onData = (chunk: Buffer) => {
    size += chunk.length;
    if (size > maxBodyBytes) {
      settle({
        refusal: payloadTooLarge(`the body is over ${maxBodyBytes} bytes (ADVSIEVE_MAX_BODY_BYTES)`, {
          name: 'maxBodyBytes',
          value: maxBodyBytes,
        }),
      });
      return;
    }
    const refusal = scan.feed(chunk);
    if (refusal) settle({ refusal });
    else chunks.push(chunk);
  };
  const onEnd = () => {
    const refusal = scan.end();
    if (refusal) return settle({ refusal });
    settle(undefined); // stops listening; `done` is called once the body is parsed
    parser.parse(Buffer.concat(chunks, size)).then(
      (parsed) => done('invalid' in parsed ? badRequest(parsed.invalid) : parsed),
      (err: Error) => {
        logger.error({ err }, 'JSON body not parsed');
        done({ refusal: requestError('INTERNAL_SERVER_ERROR', 'the body could not be parsed; try again', 500) });
      },
    );
  };
  const onError = (err: Error) => settle(badRequest(`the body could not be read: ${err.message}`));
  const onAborted = () => settle(undefined);
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', onError);
  req.on('aborted', onAborted);
}
