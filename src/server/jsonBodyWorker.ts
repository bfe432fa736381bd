/**
 * The body parser's thread (started by src/server/jsonBodyParser.ts): parses a large JSON body and
 * reads its large base64 images, so that neither holds the service's event loop. The decoded
 * images go back transferred, not copied; the body goes back without them (a few hundred bytes).
 */
import { parentPort } from 'worker_threads';
import { ownsItsMemory, parseJsonBytes, takeLargeBase64 } from './jsonText';

export interface ParseJob {
  readonly id: number;
  readonly bytes: Uint8Array;
  readonly minBase64Chars: number;
  readonly maxFileBytes: number;
  readonly tokenPrefix: string;
}

export interface ParseReply {
  readonly id: number;
  readonly body?: unknown;
  readonly invalid?: string;
  /** Each large base64 string's reading (Base64Reading; its bytes arrive as a Uint8Array). */
  readonly images: Array<{ token: string; reading: { bytes: Uint8Array } | { tooLarge: number } | { invalid: true } }>;
  /** The parser itself failed (a bug, not the body): the request gets a server error. */
  readonly failed?: string;
}

parentPort!.on('message', (job: ParseJob) => {
  try {
    reply(job);
  } catch (err) {
    parentPort!.postMessage({ id: job.id, images: [], failed: (err as Error).message } satisfies ParseReply);
  }
});

function reply(job: ParseJob): void {
  const parsed = parseJsonBytes(job.bytes);
  if ('invalid' in parsed) {
    parentPort!.postMessage({ id: job.id, invalid: parsed.invalid, images: [] } satisfies ParseReply);
    return;
  }
  const taken = takeLargeBase64(parsed.body, job.minBase64Chars, job.maxFileBytes, job.tokenPrefix);
  const transfer: ArrayBuffer[] = [];
  const images = taken.map(({ token, reading }) => {
    if (!('bytes' in reading)) return { token, reading };
    // A buffer of its own is moved; one that shares Node's pool is copied first.
    const bytes = ownsItsMemory(reading.bytes) ? reading.bytes : new Uint8Array(reading.bytes);
    transfer.push(bytes.buffer as ArrayBuffer);
    return { token, reading: { bytes } };
  });
  parentPort!.postMessage({ id: job.id, body: parsed.body, images } satisfies ParseReply, transfer);
}
