/**
 * What one request carries besides its images, below the HTTP server, the gateway and the audit
 * log: who sent it, its id and its deadline. The gateway makes the principal, the server the rest,
 * the audit log records them; none of those three imports another for it (src/request/ is below
 * all three, and imports none of them).
 */

/** The scopes a key may hold (src/gateway/scopes.ts decides what each field needs). */
export const SCOPES = ['screen', 'attack', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** Who sent a request: the API key's id and its scopes (undefined when no keys are configured). */
export interface Principal {
  readonly keyId: string;
  readonly scopes: ReadonlySet<Scope>;
}

/** A request as every layer sees it. */
export interface RequestContext {
  /** The caller, once authenticated; undefined when the gateway has no keys configured. */
  readonly principal: Principal | undefined;
  /** The request's id: the client's `x-request-id` when it sent a sane one, else a new UUID; logged and audited. */
  readonly requestId: string;
  /** When the request must be answered by: a performance.now() time, from its arrival plus ADVSIEVE_REQUEST_TIMEOUT_MS. */
  readonly deadline: number;
}
