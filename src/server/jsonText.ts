/**
 * A JSON body's bytes to its value, and its large base64 images out of it: pure, so that the body
 * parser's thread (src/server/jsonBodyWorker.ts) and the service's thread (small bodies) do the
 * same. Large bodies are base64 images: on the service's thread a 12.5 MB body cost ~110 ms of
 * toString and JSON.parse in one tick and ~40 ms per image of base64 checks and decoding, during
 * which /health/live and every other request waited.
 */
import { readBase64, type Base64Reading } from '../images/base64';

/** The array's memory is its own (not a slice of Node's buffer pool): it can be transferred to another thread. */
export function ownsItsMemory(bytes: Uint8Array): boolean {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
}

export type ParsedJson = { readonly body: unknown } | { readonly invalid: string };

/** Parses as body-parser's JSON did: an empty body is `{}`; an object or a list, or `invalid`. */
export function parseJsonBytes(bytes: Uint8Array): ParsedJson {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  const first = /\S/.exec(text)?.[0];
  if (first === undefined) return { body: {} }; // an empty body: a common slip of clients, as body-parser has it
  if (first !== '{' && first !== '[')
    return { invalid: `the JSON body must be an object or a list; it starts with '${first}'` };
  try {
    return { body: JSON.parse(text) as unknown };
  } catch (err) {
    return { invalid: `the body is not JSON: ${(err as Error).message.slice(0, 200)}` };
  }
}

export interface TakenBase64 {
  /** What now stands in the body where the string was. */
  readonly token: string;
  readonly reading: Base64Reading;
}

/**
 * Replaces every `base64` string of at least `minChars` characters in the parsed body (the
 * ImageInput field; the body's shape was bounded before it was parsed) by `${prefix}${n}`, and
 * returns each string read with readBase64. The tokens are not base64 (they hold ':'), so a token
 * that reaches the resolver without its reading is INVALID_BASE64, never another image.
 */
export function takeLargeBase64(body: unknown, minChars: number, maxBytes: number, prefix: string): TakenBase64[] {
  const taken: TakenBase64[] = [];
  const stack: unknown[] = [body];
  while (stack.length > 0) {
    const value = stack.pop();
    if (Array.isArray(value)) stack.push(...value);
    else if (value !== null && typeof value === 'object') {
      const record = value as Record<string, unknown>;
      for (const [key, v] of Object.entries(record)) {
        if (key === 'base64' && typeof v === 'string' && v.length >= minChars) {
          const token = `${prefix}${taken.length}`;
          taken.push({ token, reading: readBase64(v, maxBytes) });
          record[key] = token;
        } else if (v !== null && typeof v === 'object') stack.push(v);
      }
    }
  }
  return taken;
}
