/**
 * Strict base64 (standard or URL-safe alphabet, padding optional, whitespace ignored, a `data:`
 * URL prefix allowed): Node's own decoder skips bad characters silently, which would turn a
 * mangled string into a "corrupt image" instead of saying what is wrong with it. Pure, so that the
 * service's thread and the body parser's thread (src/server/jsonBodyWorker.ts) read a string alike.
 */
const DATA_URL = /^data:[^,]*;base64,/i;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

export type Base64Reading =
  | { readonly bytes: Buffer }
  /** The decoded size, over the limit: not decoded. */
  | { readonly tooLarge: number }
  | { readonly invalid: true };

export function readBase64(text: string, maxBytes: number): Base64Reading {
  const body = text.replace(DATA_URL, '').replace(/\s+/g, '');
  const padding = body.endsWith('==') ? 2 : body.endsWith('=') ? 1 : 0;
  const size = Math.floor((body.length * 3) / 4) - padding;
  if (size > maxBytes) return { tooLarge: size };
  if (!BASE64.test(body) || body.length % 4 === 1) return { invalid: true };
  return { bytes: Buffer.from(body.replace(/-/g, '+').replace(/_/g, '/'), 'base64') };
}
