/**
 * One request's images: reading (uploads and base64, within the size limits), decoding once per
 * distinct file, and inference through a DataLoader, so that every image a resolver needs goes to
 * the engine in one call and an image sent twice (two list entries, two fields, two aliases) is
 * inferred once. Everything here lives and dies with its request: nothing is shared between
 * requests, whose images may belong to different users.
 *
 * The request's deadline bounds each stage: reading, decoding (a decode still waiting for one of
 * the service's decode slots when the deadline passes is never started) and inference (images
 * still queued in the engine are dropped unrun). Past it the request fails whole with
 * DEADLINE_EXCEEDED: a partial answer after the client's patience helps no one.
 */
import { createHash } from 'crypto';
import DataLoader from 'dataloader';
import type { Readable } from 'stream';
import { BatcherClosedError, DeadlineExceededError, OverloadError } from '../engine/batcher';
import type { ImageOutput } from '../engine/model';
import { decodeSmallPlainPng, refuseByPngStructure, type DecodedViews } from '../images/decode';
import { readBase64, type Base64Reading } from '../images/base64';
import { ImageDecodeError } from '../images/decodeErrors';
import { DecodeDeadlineError } from '../images/decodePool';
import { logger } from '../util/logger';
import type { ImageInput } from '../schema/image.input';
import type { FileUpload } from '../schema/upload.scalar';
import {
  badUserInput,
  deadlineExceeded,
  httpStatusOf,
  ImageFailure,
  overloaded,
  payloadTooLarge,
  unavailable,
} from '../request/errors';
import type { ScreeningService } from './service';
import type { ScreeningModel } from './screeningModel';

/**
 * One view of an image (src/images/decode.ts's ImageView): its name and the loader key its pixels
 * are inferred under (the first view's is the file's SHA-256, the others' derive from it).
 */
export interface ReadView {
  readonly name: string;
  readonly key: string;
}

/**
 * An image of the request once read and decoded, or why it could not be. `bytes` is the file's size
 * and `data` the file itself, kept only when the audit log stores images (ADVSIEVE_AUDIT_STORE_IMAGES).
 * `pixels` is the policy's view (the composited first frame); `views` every view, that one first.
 */
export type ReadImage =
  | {
      readonly index: number;
      readonly sha256: string;
      readonly bytes: number;
      readonly data?: Buffer;
      readonly pixels: Float32Array;
      readonly views: readonly ReadView[];
    }
  | {
      readonly index: number;
      readonly sha256?: string;
      readonly bytes?: number;
      readonly data?: Buffer;
      readonly failure: ImageFailure;
    };

export function isFailed(img: ReadImage): img is Extract<ReadImage, { failure: ImageFailure }> {
  return 'failure' in img;
}

/**
 * What the request holds for one model: files decoded to its input shape (by SHA-256 of the file),
 * every view's or derived image's pixels by loader key, and the loader that batches them into its
 * engine. Another model sees the same file at another size, so nothing here is shared between models.
 */
interface ModelImages {
  readonly model: ScreeningModel;
  readonly pixels: Map<string, Promise<Array<ReadView & { pixels: Float32Array }> | ImageFailure>>;
  readonly ready: Map<string, Float32Array>;
  readonly loader: DataLoader<string, ImageOutput>;
}

export class RequestImages {
  private readonly perModel = new Map<string, ModelImages>();
  private counted = 0;

  /**
   * `deadline`: a performance.now() time (src/server/admission.ts sets it at the request's arrival).
   * `charge`: pays for a field's images before they are read (the gateway's rate limit); it throws
   * the request's error when they cannot be paid for.
   */
  constructor(
    private readonly service: ScreeningService,
    private readonly deadline = Infinity,
    private readonly charge?: (images: number) => Promise<void>,
    /** The body's large base64 images, read with it off this thread, by the token left in their place. */
    private readonly bodyImages?: ReadonlyMap<string, Base64Reading>,
  ) {}

  private of(model: ScreeningModel): ModelImages {
    let m = this.perModel.get(model.id);
    if (!m) {
      const ready = new Map<string, Float32Array>();
      m = { model, pixels: new Map(), ready, loader: new DataLoader((keys) => this.inferBatch(model, ready, keys)) };
      this.perModel.set(model.id, m);
    }
    return m;
  }

  /**
   * Reads and decodes the images of one argument, after charging `tokensPerImage` for each to the
   * key's bucket (`files`).
   */
  async read(
    model: ScreeningModel,
    inputs: readonly ImageInput[],
    argumentName: string,
    tokensPerImage = 1,
  ): Promise<ReadImage[]> {
    return this.decodeFiles(model, await this.files(model, inputs, argumentName, tokensPerImage));
  }

  /**
   * The files of one argument, read within the size limits, not decoded (a screening job spools
   * them for later: src/server/jobs.ts), after charging `tokensPerImage` for each to the key's
   * bucket. Request-level problems (an input with both or neither of file and base64, too many
   * images, a file over the size limit) throw GraphQL errors; an unreadable base64 image gets its
   * own failure.
   */
  async files(
    model: ScreeningModel,
    inputs: readonly ImageInput[],
    argumentName: string,
    tokensPerImage = 1,
  ): Promise<Array<Buffer | ImageFailure>> {
    // The field's work, not its image count (src/request/fieldCosts.ts): a spectrum costs 3 screens,
    // and on a model of 72 times the bundled one's FLOPs, 72 times that (ScreeningModel.tokensPerImage).
    await this.charge?.(inputs.length * tokensPerImage * model.tokensPerImage);
    const limits = this.service.config;
    this.counted += inputs.length;
    if (this.counted > limits.maxImages) {
      throw payloadTooLarge(`the request has ${this.counted} images; at most ${limits.maxImages} are accepted`, {
        name: 'maxImages',
        value: limits.maxImages,
      });
    }
    inputs.forEach((input, i) => {
      const has = [input.file != null, input.base64 != null].filter(Boolean).length;
      if (has !== 1) {
        throw badUserInput(
          `${argumentName}[${i}]: give exactly one of 'file' and 'base64', got ${has === 0 ? 'neither' : 'both'}`,
          argumentName,
        );
      }
    });
    return this.withinDeadline(
      Promise.all(inputs.map((input, i) => this.bytes(input, `${argumentName}[${i}]`))),
      'reading its images',
    );
  }

  /**
   * Files decoded to the model's input (index: the position in `files`); a file already failed
   * keeps its failure. A screening job's batch (src/jobs/jobConsumer.ts) enters here with the bytes
   * it read from its directory or the spool.
   */
  decodeFiles(model: ScreeningModel, files: ReadonlyArray<Buffer | ImageFailure>): Promise<ReadImage[]> {
    const m = this.of(model);
    return this.withinDeadline(Promise.all(files.map((b, index) => this.decode(m, index, b))), 'decoding its images');
  }

  /**
   * Engine outputs for the given images (for failed ones, their failure), from one engine call.
   * A full engine queue is a request-level OVERLOADED error: retrying part of a request helps no one.
   */
  async infer(model: ScreeningModel, images: readonly ReadImage[]): Promise<Array<ImageOutput | ImageFailure>> {
    const keys = images.flatMap((img) => (isFailed(img) ? [] : [img.sha256]));
    const outputs = await this.withinDeadline(this.of(model).loader.loadMany(keys), 'its images waited for inference');
    const byKey = new Map(keys.map((k, i) => [k, outputs[i]]));
    return images.map((img) => (isFailed(img) ? img.failure : this.checked(byKey.get(img.sha256)!)));
  }

  /**
   * Engine outputs for every view of the given images (for failed ones, their failure), from one
   * engine call; a view seen twice (the same file twice) is inferred once.
   */
  async inferViews(
    model: ScreeningModel,
    images: readonly ReadImage[],
  ): Promise<Array<ImageFailure | Array<{ name: string; output: ImageOutput | ImageFailure }>>> {
    const keys = images.flatMap((img) => (isFailed(img) ? [] : img.views.map((v) => v.key)));
    const outputs = await this.withinDeadline(this.of(model).loader.loadMany(keys), 'its images waited for inference');
    const byKey = new Map(keys.map((k, i) => [k, outputs[i]]));
    return images.map((img) =>
      isFailed(img) ? img.failure : img.views.map((v) => ({ name: v.name, output: this.checked(byKey.get(v.key)!) })),
    );
  }

  /** Engine outputs for pixels made during the request (a low-passed or attacked image), by key. */
  async inferPixels(
    model: ScreeningModel,
    entries: ReadonlyArray<{ key: string; pixels: Float32Array }>,
  ): Promise<Array<ImageOutput | ImageFailure>> {
    const m = this.of(model);
    for (const e of entries) m.ready.set(e.key, e.pixels);
    const outputs = await this.withinDeadline(
      m.loader.loadMany(entries.map((e) => e.key)),
      'its images waited for inference',
    );
    return outputs.map((o) => this.checked(o));
  }

  /** `work`, or DEADLINE_EXCEEDED once the request's deadline passes, whichever comes first. */
  private async withinDeadline<T>(work: Promise<T>, stage: string): Promise<T> {
    if (this.deadline === Infinity) return work;
    const left = this.deadline - performance.now();
    if (left <= 0) {
      work.catch(() => undefined); // failing anyway: its own error would only be unhandled
      throw this.expired(stage);
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.expired(stage)), left);
    });
    try {
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private expired(stage: string): Error {
    return deadlineExceeded(this.service.config.requestTimeoutMs, stage);
  }

  private checked(o: ImageOutput | Error): ImageOutput | ImageFailure {
    if (!(o instanceof Error)) return o;
    if (o instanceof OverloadError) throw overloaded(o);
    if (o instanceof DeadlineExceededError) throw this.expired('its images waited in the engine queue');
    if (o instanceof BatcherClosedError) throw unavailable('the service is shutting down; retry on another instance');
    return new ImageFailure('INFERENCE_FAILED', o.message);
  }

  private async inferBatch(
    model: ScreeningModel,
    ready: ReadonlyMap<string, Float32Array>,
    keys: readonly string[],
  ): Promise<Array<ImageOutput | Error>> {
    const pixels = keys.map((k) => ready.get(k));
    const missing = pixels.findIndex((p) => p === undefined);
    if (missing >= 0) throw new Error(`no pixels for image key ${keys[missing]}`);
    // Throws OverloadError synchronously when the queue cannot take all of them: the batch's
    // promise rejects and every key of it gets the error (DataLoader does not cache it).
    const settled = await Promise.allSettled(model.engine.infer(pixels as Float32Array[], { deadline: this.deadline }));
    return settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error)));
  }

  private async bytes(input: ImageInput, where: string): Promise<Buffer | ImageFailure> {
    const max = this.service.config.maxFileBytes;
    if (input.base64 != null) {
      const reading = this.bodyImages?.get(input.base64) ?? readBase64(input.base64, max);
      if ('tooLarge' in reading) {
        throw payloadTooLarge(`${where}: the image is ${reading.tooLarge} bytes; at most ${max} are accepted`, {
          name: 'maxFileBytes',
          value: max,
        });
      }
      if ('invalid' in reading) return new ImageFailure('INVALID_BASE64', `${where}: not valid base64`);
      return reading.bytes;
    }
    let file: FileUpload;
    let data: Buffer;
    try {
      file = await input.file!;
      data = await readAll(file.createReadStream());
    } catch (err) {
      const status = httpStatusOf(err);
      const message = `${where}: ${(err as Error).message}`;
      if (status === 413) throw payloadTooLarge(message, { name: 'maxFileBytes', value: max });
      if (status !== undefined && status < 500) throw badUserInput(message);
      throw err;
    }
    return data;
  }

  private async decode(m: ModelImages, index: number, bytes: Buffer | ImageFailure): Promise<ReadImage> {
    if (bytes instanceof ImageFailure) return { index, failure: bytes };
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const inputShape = m.model.metadata.inputShape;
    let decoded = m.pixels.get(sha256);
    if (!decoded) {
      const config = this.service.config;
      const toViews = (d: DecodedViews) =>
        d.views.map((v, i) => ({ name: v.name, key: i === 0 ? sha256 : `${sha256}:view:${v.name}`, pixels: v.pixels }));
      // A small plain model-sized PNG here (bounded work: src/images/decode.ts); anything else in a
      // decode process, within min(ADVSIEVE_DECODE_TIMEOUT_MS, time left): never on this thread.
      const small = decodeSmallPlainPng(bytes, inputShape);
      const refused = small ? undefined : refusedByStructure(bytes);
      decoded = small
        ? Promise.resolve(toViews(small))
        : refused
          ? Promise.resolve(refused)
          : this.service.decodePool
              .decode(
                bytes,
                inputShape,
                { maxPixels: config.maxPixels, multiFrame: config.multiFrame, maxFrames: config.maxFrames },
                this.deadline,
              )
              .then(toViews, (err: Error) => {
                if (err instanceof DecodeDeadlineError) throw this.expired('its images waited to be decoded');
                if (err instanceof ImageDecodeError) {
                  // The decoder's own words name library internals: the log's, not the client's.
                  if (err.detail) logger.debug({ sha256, code: err.code, detail: err.detail }, 'image not decoded');
                  return new ImageFailure(err.code, err.message);
                }
                throw err;
              });
      m.pixels.set(sha256, decoded);
    }
    const result = await decoded;
    const file = { bytes: bytes.length, data: this.service.config.audit.storeImages ? bytes : undefined };
    if (result instanceof ImageFailure) return { index, sha256, ...file, failure: result };
    for (const v of result) m.ready.set(v.key, v.pixels);
    return {
      index,
      sha256,
      ...file,
      pixels: result[0].pixels,
      views: result.map((v) => ({ name: v.name, key: v.key })),
    };
  }
}

/** A PNG refused by its chunk count or animation, checked here in bounded time (refuseByPngStructure). */
function refusedByStructure(bytes: Buffer): ImageFailure | undefined {
  try {
    refuseByPngStructure(bytes);
    return undefined;
  } catch (err) {
    if (err instanceof ImageDecodeError) return new ImageFailure(err.code, err.message);
    throw err;
  }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
