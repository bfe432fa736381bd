/**
 * What one request carries besides its images, below the HTTP server, the gateway and the audit
 * log: who sent it, its id and its deadline. The gateway makes the principal, the server the rest,
 * the audit log records them; none of those three imports another for it (src/request/ is below
 * all three, and imports none of them).
 */

/**
 * The scopes a key may hold (src/gateway/scopes.ts decides what each field needs):
 * - `screen`: the screened verdicts (`screen`, `model`, `limits`, `engineStats`);
 * - `oracle`: the unscreened oracles — `classify`, `defend`, `spectrum`, `trajectory` answer with
 *   the model's predictions or per-layer distances and no detection, what an adaptive attack is
 *   tuned against; a `screen` key does not get them;
 * - `policy`: may ask `screen` for a looser threshold than the operator's (a targetFpr below
 *   ADVSIEVE_TARGET_FPR / the calibration's default);
 * - `jobs`: bulk screening jobs (`submitScreeningJob`, `screeningJob`, `cancelScreeningJob`): a job
 *   may name a directory on the server (one the operator allowed) and runs at the consumers' pace,
 *   so it is granted apart from `screen`;
 * - `attack`: red-teaming; `admin`: the audit log and /metrics (and any key's jobs).
 */
export const SCOPES = ['screen', 'oracle', 'policy', 'jobs', 'attack', 'admin'] as const;
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
  /**
   * The request's id: a UUID the server makes for every request, so that it is unique in the logs
   * and the audit log whatever clients send; answered in the `x-request-id` response header.
   */
  readonly requestId: string;
  /**
   * The client's own `x-request-id`, as given, when it is a sane token (else undefined): kept beside
   * the server's id (logs, the audit log's clientRequestId, the `x-client-request-id` response header),
   * never in its place — two clients may choose the same one.
   */
  readonly clientRequestId?: string;
  /** When the request must be answered by: a performance.now() time, from its arrival plus ADVSIEVE_REQUEST_TIMEOUT_MS. */
  readonly deadline: number;
  /** The screening job whose images this work judges (src/jobs/): its verdicts are audited under it. */
  readonly jobId?: string;
}
