/**
 * A decode process's entry (forked by src/images/decodePool.ts): decodes one file at a time with
 * decodeViews and sends back its views or its coded error. Everything that reads an untrusted file
 * (chunk walks, inflation, libvips) runs here, where a runaway decode can be killed outright:
 * stopping a worker thread does not stop libvips' native work on libuv's threads.
 */
import * as net from 'net';
import * as os from 'os';
import sharp from 'sharp';
import { decodeViews, DecodeOptions, DecodedViews } from './decode';
import { ImageDecodeError } from './decodeErrors';

/** Sent on the IPC channel; the file's `length` bytes follow on the data pipe (fd 4). */
export interface DecodeRequest {
  readonly id: number;
  readonly length: number;
  readonly shape: readonly [number, number, number];
  readonly options: DecodeOptions;
}

export type DecodeReply =
  | { readonly id: number; readonly ok: DecodedViews }
  | { readonly id: number; readonly error: { code: string; message: string; detail?: string } };

// One image at a time per process: libvips' own thread pool would only compete with the other
// decode processes (the pool's size is the concurrency), and its operation cache keeps pixels of
// earlier files alive for nothing.
sharp.concurrency(1);
sharp.cache(false);
// Below the service's priority: when decoding saturates the cores, the service's thread (health
// checks, answers, the engine's batching) still gets the CPU first. Lowering one's own priority
// needs no privilege.
try {
  os.setPriority(10);
} catch {
  // not permitted here (some sandboxes): the decode still runs, at the same priority
}

/**
 * The files' bytes arrive on a pipe of their own, raw: a 5 MB file through the IPC channel is
 * serialized on the service's thread (~45 ms per 5 MB with structured clone, and more to receive),
 * while a pipe write is handed to the kernel as it is.
 */
const data = new net.Socket({ fd: 4, readable: true, writable: false });
const received: Buffer[] = [];
let receivedBytes = 0;
let waiting: { length: number; resolve: (b: Buffer) => void } | undefined;

function deliver(): void {
  if (!waiting || receivedBytes < waiting.length) return;
  const all = received.length === 1 ? received[0] : Buffer.concat(received);
  const bytes = all.subarray(0, waiting.length);
  const rest = all.subarray(waiting.length);
  received.length = 0;
  receivedBytes = rest.length;
  if (rest.length) received.push(rest);
  const { resolve } = waiting;
  waiting = undefined;
  resolve(bytes);
}

data.on('data', (chunk: Buffer) => {
  received.push(chunk);
  receivedBytes += chunk.length;
  deliver();
});

function readBytes(length: number): Promise<Buffer> {
  return new Promise((resolve) => {
    waiting = { length, resolve };
    deliver();
  });
}

async function handle(req: DecodeRequest): Promise<DecodeReply> {
  const bytes = await readBytes(req.length);
  try {
    return { id: req.id, ok: await decodeViews(bytes, req.shape, req.options) };
  } catch (err) {
    if (err instanceof ImageDecodeError)
      return { id: req.id, error: { code: err.code, message: err.message, detail: err.detail } };
    return {
      id: req.id,
      error: { code: 'DECODE_FAILED', message: 'the image could not be decoded', detail: (err as Error).message },
    };
  }
}

// One file at a time, in the order sent (the pool sends the next only after this one's answer).
let queue = Promise.resolve();
process.on('message', (req: DecodeRequest) => {
  queue = queue.then(() => handle(req).then((reply) => void process.send!(reply)));
});
// The service is gone (crashed, or killed with -9): so is this process.
process.on('disconnect', () => process.exit(0));
process.send!({ ready: true });
