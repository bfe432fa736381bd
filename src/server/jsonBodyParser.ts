/**
 * Parses JSON bodies for /graphql (src/server/jsonBody.ts): a small body on the service's thread,
 * a large one on a thread of its own (src/server/jsonBodyWorker.ts), which also reads its large
 * base64 images. A 12.5 MB body of two base64 images held the event loop ~200 ms (issue 11's
 * `idat-chunks` scenario: /health/live p99 173 ms); what remains here for it is a copy of the
 * small parsed body and the images' buffers, moved.
 *
 * The images read there are left in the body as tokens (src/server/jsonText.ts) and handed to the
 * request's RequestImages, which reads a token's image instead of its text. The token prefix is
 * random per body, so no client can name another body's image.
 */
import { randomBytes } from 'crypto';
import { Worker } from 'worker_threads';
import type { Base64Reading } from '../images/base64';
import { workerScript } from '../util/workerScript';
import type { ParseJob, ParseReply } from './jsonBodyWorker';
import { ownsItsMemory, parseJsonBytes, type ParsedJson } from './jsonText';

/** Bodies from this size on are parsed off the service's thread (below it, parsing costs ≤ ~2 ms). */
export const OFF_THREAD_BODY_BYTES = 256 * 1024;
/** Base64 strings from this length on are read off the service's thread, with their body. */
export const OFF_THREAD_BASE64_CHARS = 64 * 1024;

export type ParsedBody = ParsedJson & {
  /** The body's large base64 images by the token that stands for each in the body. */
  readonly images: ReadonlyMap<string, Base64Reading>;
};

const NONE: ReadonlyMap<string, Base64Reading> = new Map();

export class JsonBodyParser {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, { resolve(r: ParseReply): void; reject(e: Error): void }>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly maxFileBytes: number) {}

  /**
   * Rejects only when the parser's thread fails (never for the body: that is `invalid`). A large
   * body's buffer, when it has its memory to itself, is moved to the parser's thread: the caller
   * must not read `bytes` afterwards.
   */
  async parse(bytes: Buffer): Promise<ParsedBody> {
    if (bytes.length < OFF_THREAD_BODY_BYTES) return { ...parseJsonBytes(bytes), images: NONE };
    if (this.closed) throw new Error('the JSON body parser is closed');
    const id = this.nextId++;
    const job: ParseJob = {
      id,
      bytes,
      minBase64Chars: OFF_THREAD_BASE64_CHARS,
      maxFileBytes: this.maxFileBytes,
      tokenPrefix: `advsieve:body-image:${randomBytes(12).toString('hex')}:`,
    };
    const reply = new Promise<ParseReply>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    // A buffer of its own (Buffer.concat of a large body) is moved rather than copied.
    this.start().postMessage(job, ownsItsMemory(bytes) ? [bytes.buffer as ArrayBuffer] : []);
    const r = await reply;
    if (r.failed !== undefined) throw new Error(`the JSON body parser failed: ${r.failed}`);
    if (r.invalid !== undefined) return { invalid: r.invalid, images: NONE };
    const images = new Map<string, Base64Reading>(
      r.images.map(({ token, reading }) => [
        token,
        'bytes' in reading
          ? { bytes: Buffer.from(reading.bytes.buffer, reading.bytes.byteOffset, reading.bytes.byteLength) }
          : reading,
      ]),
    );
    return { body: r.body, images };
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(workerScript(__dirname, 'jsonBodyWorker'));
    w.unref(); // idle, it keeps nothing alive
    w.on('message', (r: ParseReply) => {
      const p = this.pending.get(r.id);
      this.pending.delete(r.id);
      p?.resolve(r);
    });
    w.on('error', () => undefined); // 'exit' follows and fails what was pending
    w.once('exit', (code) => {
      if (this.worker === w) this.worker = undefined; // the next body starts another
      const err = new Error(`the JSON body parser's thread exited (code ${code})`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
    this.worker = w;
    return w;
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }
}
