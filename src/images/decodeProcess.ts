/**
 * A decode process's entry (forked by src/images/decodePool.ts): decodes one file at a time with
 * decodeViews and sends back its views or its coded error. Everything that reads an untrusted file
 * (chunk walks, inflation, libvips) runs here, where a runaway decode can be killed outright:
 * stopping a worker thread does not stop libvips' native work on libuv's threads.
 */
import * as os from 'os';
import sharp from 'sharp';
import { decodeViews, DecodeOptions, DecodedViews } from './decode';
import { ImageDecodeError } from './decodeErrors';

export interface DecodeRequest {
  readonly id: number;
  readonly bytes: Uint8Array;
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

async function handle(req: DecodeRequest): Promise<DecodeReply> {
  const bytes = Buffer.from(req.bytes.buffer, req.bytes.byteOffset, req.bytes.byteLength);
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

process.on('message', (req: DecodeRequest) => {
  void handle(req).then((reply) => process.send!(reply));
});
// The service is gone (crashed, or killed with -9): so is this process.
process.on('disconnect', () => process.exit(0));
process.send!({ ready: true });
