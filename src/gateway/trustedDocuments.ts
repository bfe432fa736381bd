/**
 * Trusted documents (a persisted-query allow-list): with ADVSIEVE_TRUSTED_DOCUMENTS set, only the
 * documents of that manifest run. The manifest is Apollo's format (what `@apollo/generate-persisted-
 * query-manifest` writes): `{"format": "apollo-persisted-query-manifest", "version": 1,
 * "operations": [{"id": "<sha256 hex of body>", "name", "type", "body"}]}`.
 *
 * A request names its document by sending the body (whose SHA-256 must be listed) or only
 * `extensions.persistedQuery.sha256Hash` (the body is then filled in from the manifest before
 * Apollo sees the request, so Apollo's own persisted-query cache is never what decides).
 */
import { createHash } from 'crypto';
import * as fs from 'fs';

const FORMAT = 'apollo-persisted-query-manifest';
const SHA256_HEX = /^[0-9a-f]{64}$/;

export class TrustedDocumentsError extends Error {
  constructor(file: string, problem: string) {
    super(`ADVSIEVE_TRUSTED_DOCUMENTS ${file}: ${problem}`);
    this.name = 'TrustedDocumentsError';
  }
}

export function documentHash(body: string): string {
  return createHash('sha256').update(body, 'utf8').digest('hex');
}

export class TrustedDocuments {
  private constructor(private readonly bodies: ReadonlyMap<string, string>) {}

  get size(): number {
    return this.bodies.size;
  }

  /** Reads and checks a manifest; a bad one stops the start, naming the file and the entry. */
  static load(file: string): TrustedDocuments {
    let manifest: { format?: unknown; version?: unknown; operations?: unknown };
    try {
      manifest = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof manifest;
    } catch (err) {
      throw new TrustedDocumentsError(file, `cannot read it as JSON (${(err as Error).message})`);
    }
    if (manifest?.format !== FORMAT || manifest.version !== 1)
      throw new TrustedDocumentsError(file, `expected "format": "${FORMAT}" and "version": 1`);
    if (!Array.isArray(manifest.operations)) throw new TrustedDocumentsError(file, 'expected an "operations" array');
    const bodies = new Map<string, string>();
    manifest.operations.forEach((op: { id?: unknown; body?: unknown; name?: unknown }, i) => {
      const where = `operation ${i}${typeof op?.name === 'string' ? ` (${op.name})` : ''}`;
      if (typeof op?.body !== 'string' || op.body.length === 0)
        throw new TrustedDocumentsError(file, `${where}: "body" must be the document's text`);
      if (typeof op.id !== 'string' || !SHA256_HEX.test(op.id))
        throw new TrustedDocumentsError(file, `${where}: "id" must be 64 lower-case hex digits`);
      if (documentHash(op.body) !== op.id)
        throw new TrustedDocumentsError(file, `${where}: "id" is not the SHA-256 of "body"`);
      bodies.set(op.id, op.body);
    });
    return new TrustedDocuments(bodies);
  }

  /** Whether the document with this text is listed. */
  allows(body: string): boolean {
    return this.bodies.has(documentHash(body));
  }

  /** The listed body of a hash, if listed. */
  body(sha256: string): string | undefined {
    return this.bodies.get(sha256);
  }
}
