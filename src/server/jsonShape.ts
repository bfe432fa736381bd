/**
 * The shape of a JSON request body, measured on its bytes before JSON.parse runs.
 *
 * Why before: parsing is the costly part of a hostile body, and it runs on the main thread. Measured
 * (Node 20, this machine, `node` on the bodies alone): 12 MB of `variables` with a million unused
 * keys took 1.15 s to parse and 0.6 s more for the gateway's list walk; 2 MB of `[[[…]]]` a million
 * deep, 0.5 s; 6 MB of three million numbers, 0.27 s. A 12 MB string of base64, what a legitimate
 * body is, takes 0.11 s. Each limit below is checked while scanning and the scan stops at the first
 * one passed, so a refused body costs a scan up to that point, never a parse.
 *
 * The scan's cost: strings are skipped with Buffer.indexOf (native), so a body of base64 images is
 * a handful of steps; only the bytes outside strings (structure, numbers, whitespace) are looked at
 * one by one, and there are few of those below the limits.
 *
 * Limits (derived from the images and batch limits; docs/api.md, "Holding under load and faults"):
 * - depth: at most JSON_MAX_DEPTH nested lists and objects (a real request nests 6 deep);
 * - object keys and list entries in the whole body: each at most max(1024, 4 × batch × images)
 *   (a full batch of full image lists has about a quarter of that);
 * - each operation's variables: their list entries, counted as src/gateway/variableLists.ts counts
 *   them after parsing (a list held directly in a list is one entry, and is not looked into), at
 *   most ADVSIEVE_MAX_IMAGES, the same refusal the gateway gives, earlier;
 * - a batch: its operations counted to the end, for the gateway's TOO_MANY_OPERATIONS message.
 * A body that is not JSON is left to the parser, which says what is wrong with it.
 */
import type { GraphQLError } from 'graphql';
import { tooManyListEntries, tooManyOperations } from '../gateway/errors';
import { payloadTooLarge, requestError } from '../request/errors';

/** Nesting of lists and objects; a request needs 6 (batch, operation, variables, list, image, field). */
export const JSON_MAX_DEPTH = 32;

export interface JsonShapeLimits {
  readonly maxDepth: number;
  readonly maxKeys: number;
  readonly maxEntries: number;
  /** List entries of one operation's variables (ADVSIEVE_MAX_IMAGES). */
  readonly maxImages: number;
  readonly maxBatchedOperations: number;
}

export function jsonShapeLimits(maxImages: number, maxBatchedOperations: number): JsonShapeLimits {
  const most = Math.max(1024, 4 * maxBatchedOperations * maxImages);
  return { maxDepth: JSON_MAX_DEPTH, maxKeys: most, maxEntries: most, maxImages, maxBatchedOperations };
}

/** One open list or object. */
interface Frame {
  readonly array: boolean;
  /** The operation this container belongs to (its index in the batch), or -1. */
  readonly op: number;
  /** This container is an operation object: its keys are read. */
  readonly isOp: boolean;
  /** Inside that operation's variables, and walked by the gateway's list count. */
  readonly counted: boolean;
  /** A list: the next token starts an entry. An object: the next string is a key. */
  expecting: boolean;
  /** An object: the key whose value comes next. */
  key: string | undefined;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function isDelimiter(c: number): boolean {
  return c === 0x2c || c === 0x3a || c === 0x5d || c === 0x7d || c === QUOTE || isSpace(c);
}

function tooDeep(max: number): GraphQLError {
  return requestError('BAD_USER_INPUT', `the JSON body nests lists and objects more than ${max} deep`, 400, {
    limit: 'maxJsonDepth',
    limitValue: max,
  });
}

/**
 * The first limit a UTF-8 JSON body passes, as the refusal to send; undefined when it keeps them
 * (or is not JSON: the parser then says why).
 */
export function jsonShapeRefusal(buf: Buffer, limits: JsonShapeLimits): GraphQLError | undefined {
  const scan = new JsonShapeScan(limits);
  return scan.feed(buf) ?? scan.end();
}

/** Longest key read from the bytes (longer ones cannot be `variables`, even written with escapes). */
const MAX_KEY_BYTES = 128;

/**
 * One pass over a body's bytes, fed chunk by chunk as they arrive (so that a body is refused at
 * the first limit it passes, before the rest is kept), stopping at the first limit passed.
 */
export class JsonShapeScan {
  private readonly stack: Frame[] = [];
  private keys = 0;
  private entries = 0;
  private batched = false;
  private operations = 0;
  /** List entries counted in each operation's variables. */
  private readonly opEntries: number[] = [];
  /** The batch is over its limit: only its length is counted from then on. */
  private batchOver = false;
  private depth = 0;
  /** Within a string; the last byte seen in it was an unescaped backslash. */
  private inString = false;
  private pendingEscape = false;
  /** The string being read is an operation's key: its bytes so far. */
  private keyBytes: Buffer[] | undefined;
  /** Within a number or a literal. */
  private inLiteral = false;
  private refusal: GraphQLError | undefined;

  constructor(private readonly limits: JsonShapeLimits) {}

  /** Scans the next chunk; the refusal once a limit is passed (and from then on). */
  feed(chunk: Buffer): GraphQLError | undefined {
    let i = 0;
    while (i < chunk.length && !this.refusal) {
      if (this.inString) i = this.stringFrom(chunk, i);
      else if (this.inLiteral) i = this.literalFrom(chunk, i);
      else if (isSpace(chunk[i])) i++;
      else if (this.batchOver) i = this.countBatch(chunk, i);
      else i = this.token(chunk, i);
    }
    return this.refusal;
  }

  /** The refusal once the whole body was fed. */
  end(): GraphQLError | undefined {
    if (this.refusal) return this.refusal;
    return this.batchOver ? tooManyOperations(this.operations, this.limits.maxBatchedOperations) : undefined;
  }

  /** Reads on within a string from `i`; where the scan goes on. */
  private stringFrom(chunk: Buffer, i: number): number {
    let j = i;
    if (this.pendingEscape) {
      this.pendingEscape = false;
      j++;
    }
    for (;;) {
      const q = j < chunk.length ? chunk.indexOf(QUOTE, j) : -1;
      const stop = q < 0 ? chunk.length : q;
      let slashes = 0;
      for (let k = stop - 1; k >= j && chunk[k] === BACKSLASH; k--) slashes++;
      if (q < 0) {
        this.pendingEscape = slashes % 2 === 1;
        this.keepKeyBytes(chunk, i, chunk.length);
        return chunk.length;
      }
      if (slashes % 2 === 1) {
        j = q + 1;
        continue;
      }
      this.keepKeyBytes(chunk, i, q);
      this.inString = false;
      if (this.keyBytes) {
        const top = this.stack[this.stack.length - 1];
        top.key = keyOf(Buffer.concat(this.keyBytes));
        this.keyBytes = undefined;
      }
      return q + 1;
    }
  }

  private keepKeyBytes(chunk: Buffer, from: number, to: number): void {
    if (!this.keyBytes) return;
    const held = this.keyBytes.reduce((n, b) => n + b.length, 0);
    if (held + (to - from) > MAX_KEY_BYTES) this.keyBytes = [Buffer.from('…')];
    else this.keyBytes.push(chunk.subarray(from, to));
  }

  private literalFrom(chunk: Buffer, i: number): number {
    while (i < chunk.length && !isDelimiter(chunk[i])) i++;
    if (i < chunk.length) this.inLiteral = false;
    return i;
  }

  /** Past the batch limit only its length matters (the gateway's message gives it). */
  private countBatch(chunk: Buffer, i: number): number {
    const c = chunk[i];
    if (c === QUOTE) this.inString = true;
    else if (c === 0x5b || c === 0x7b) this.depth++;
    else if (c === 0x5d || c === 0x7d) this.depth--;
    else if (c === 0x2c && this.depth === 1) this.operations++;
    return i + 1;
  }

  /** Reads the token starting at `i`; where the scan goes on. */
  private token(chunk: Buffer, i: number): number {
    const c = chunk[i];
    const top = this.stack[this.stack.length - 1];
    if (c === QUOTE) {
      this.inString = true;
      if (top && !top.array && top.expecting) this.keyStarts(top);
      else this.refusal = this.valueStarts();
    } else if (c === 0x5b || c === 0x7b) {
      this.depth++;
      this.refusal = this.valueStarts() ?? this.open(c === 0x5b);
    } else if (c === 0x5d || c === 0x7d) {
      this.stack.pop();
      this.depth--;
    } else if (c === 0x2c) {
      if (top) top.expecting = true;
    } else if (c !== 0x3a) {
      // A number or a literal: one value, up to the next delimiter.
      this.inLiteral = true;
      this.refusal = this.valueStarts();
    }
    if (this.batchOver) this.depth = this.stack.length;
    return i + 1;
  }

  private keyStarts(top: Frame): void {
    top.expecting = false;
    top.key = undefined;
    if (++this.keys > this.limits.maxKeys) {
      this.refusal = payloadTooLarge(`the JSON body holds more than ${this.limits.maxKeys} object keys`, {
        name: 'maxJsonKeys',
        value: this.limits.maxKeys,
      });
    }
    if (top.isOp) this.keyBytes = [];
  }

  /** A value starts in the innermost container: count it where it is an entry. */
  private valueStarts(): GraphQLError | undefined {
    const { stack, limits } = this;
    const top = stack[stack.length - 1];
    if (!top?.array || !top.expecting) return undefined;
    top.expecting = false;
    if (stack.length === 1) {
      if (++this.operations > limits.maxBatchedOperations) this.batchOver = true;
      return undefined;
    }
    if (++this.entries > limits.maxEntries) {
      return payloadTooLarge(`the JSON body's lists hold more than ${limits.maxEntries} entries in all`, {
        name: 'maxJsonEntries',
        value: limits.maxEntries,
      });
    }
    if (top.counted && ++this.opEntries[top.op] > limits.maxImages) {
      return tooManyListEntries(this.batched ? `operation ${top.op} of the batch` : 'the operation', limits.maxImages);
    }
    return undefined;
  }

  private open(array: boolean): GraphQLError | undefined {
    const { stack } = this;
    if (stack.length >= this.limits.maxDepth) return tooDeep(this.limits.maxDepth);
    const parent = stack[stack.length - 1];
    let op = parent?.op ?? -1;
    let isOp = false;
    let counted = false;
    if (!parent) {
      this.batched = array;
      isOp = !array;
      op = array ? -1 : 0;
    } else if (stack.length === 1 && parent.array) {
      isOp = !array;
      op = this.operations - 1;
    } else if (parent.isOp && parent.key === 'variables') {
      counted = true;
    } else if (parent.counted) {
      // The gateway does not look into a list held directly in a list (see variableLists.ts).
      counted = !(array && parent.array);
    }
    if (isOp) this.opEntries[op] = 0;
    stack.push({ array, op, isOp, counted, expecting: true, key: undefined });
    return undefined;
  }
}

/** A key's text from its bytes between the quotes (escapes resolved as JSON.parse would). */
function keyOf(bytes: Buffer): string {
  const raw = bytes.toString('utf8');
  if (!raw.includes('\\')) return raw;
  try {
    return JSON.parse(`"${raw}"`) as string;
  } catch {
    return raw;
  }
}
