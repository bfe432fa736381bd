/**
 * graphql-upload's Express middleware (the GraphQL multipart request spec). Version 17 is the last
 * for Node 20 and is ESM-only; TypeScript compiles `import()` to `require()` under CommonJS, so the
 * real dynamic import is made through a Function, which TypeScript leaves alone.
 */
import type { RequestHandler } from 'express';

export interface UploadLimits {
  /** Largest file in bytes. */
  readonly maxFileSize: number;
  /** Most files in one request. */
  readonly maxFiles: number;
}

type UploadMiddlewareFactory = (options: UploadLimits) => RequestHandler;

const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

export async function uploadMiddleware(limits: UploadLimits): Promise<RequestHandler> {
  const mod = (await importEsm('graphql-upload/graphqlUploadExpress.mjs')) as { default: UploadMiddlewareFactory };
  return mod.default({ maxFileSize: limits.maxFileSize, maxFiles: limits.maxFiles });
}
