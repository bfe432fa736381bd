import type { Request } from 'express';

/**
 * The body size a request declares, from its headers alone (before any byte of the body is read):
 * its Content-Length; undefined for a chunked body (Transfer-Encoding, no length known); 0 with
 * neither header, which means no body at all (RFC 9112 §6.3; a GET, most often).
 */
export function declaredBodyBytes(req: Request): number | undefined {
  const length = req.get('content-length');
  if (length !== undefined) return Number(length) || 0;
  return req.get('transfer-encoding') !== undefined ? undefined : 0;
}
