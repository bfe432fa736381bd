/**
 * The `Upload` scalar of the GraphQL multipart request spec. graphql-upload's middleware replaces
 * each file's `null` in the variables with an `Upload` whose promise resolves to the file; this
 * scalar hands resolvers that promise. Written here rather than imported from graphql-upload, whose
 * modules are ESM-only (.mjs): our CommonJS build loads its middleware with a dynamic import at
 * start-up, but the schema must also build where only `require` works (ts-jest, the drift test).
 * The check is by shape, which is all graphql-upload's own scalar relies on besides `instanceof`.
 */
import { GraphQLError, GraphQLScalarType } from 'graphql';
import type { Readable } from 'stream';

/** What an uploaded file's promise resolves to (graphql-upload's FileUpload). */
export interface FileUpload {
  readonly filename: string;
  /** The client's claim, never trusted: images are sniffed from their bytes. */
  readonly mimetype: string;
  readonly encoding: string;
  createReadStream(): Readable;
}

interface UploadLike {
  readonly promise: Promise<FileUpload>;
  readonly resolve: unknown;
  readonly reject: unknown;
}

function isUpload(value: unknown): value is UploadLike {
  const v = value as Partial<UploadLike> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.promise?.then === 'function' &&
    typeof v.resolve === 'function' &&
    typeof v.reject === 'function'
  );
}

export const GraphQLUpload = new GraphQLScalarType<Promise<FileUpload>, never>({
  name: 'Upload',
  description:
    'A file sent as a part of a multipart request (GraphQL multipart request spec); send `null` in its place in `operations` and map the part to it.',
  parseValue(value) {
    if (isUpload(value)) return value.promise;
    throw new GraphQLError('Upload value invalid: send the file as a multipart part mapped to this variable.');
  },
  parseLiteral() {
    throw new GraphQLError('Upload literal unsupported: send the file as a multipart part mapped to a variable.');
  },
  serialize() {
    throw new GraphQLError('Upload serialization unsupported.');
  },
});
