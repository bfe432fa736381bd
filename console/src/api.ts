/**
 * The console's only door to the service: the public GraphQL API at /graphql on this origin, with
 * the API key the user typed. The key lives in sessionStorage — this tab only, gone when it
 * closes, never in localStorage or a cookie — and goes out as `authorization: Bearer` (docs/api.md,
 * "Keys, scopes and limits"). Files go as GraphQL multipart requests, which Apollo's CSRF
 * prevention accepts only with a preflight header.
 */

const KEY_STORAGE = 'advsieve.apiKey';

export function storedKey(): string {
  try {
    return sessionStorage.getItem(KEY_STORAGE) ?? '';
  } catch {
    return '';
  }
}

export function storeKey(key: string): void {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** A request the service refused, or one that never reached it: its `extensions.code` when it had one. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status: number,
  ) {
    super(message);
  }
}

function authHeaders(): Record<string, string> {
  const key = storedKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

interface GraphQLBody<T> {
  data?: T | null;
  errors?: Array<{ message: string; extensions?: { code?: string } }>;
}

async function answerOf<T>(res: Response): Promise<T> {
  let body: GraphQLBody<T>;
  try {
    body = (await res.json()) as GraphQLBody<T>;
  } catch {
    throw new ApiError(`the service answered HTTP ${res.status} without JSON`, 'BAD_RESPONSE', res.status);
  }
  const first = body.errors?.[0];
  if (first || !body.data) {
    throw new ApiError(first?.message ?? 'no data', first?.extensions?.code ?? 'BAD_RESPONSE', res.status);
  }
  return body.data;
}

async function post(init: RequestInit): Promise<Response> {
  try {
    return await fetch('/graphql', { ...init, credentials: 'omit', cache: 'no-store' });
  } catch (err) {
    throw new ApiError(`the service cannot be reached (${(err as Error).message})`, 'NETWORK', 0);
  }
}

/** A query or mutation without files, as JSON. */
export async function graphql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const res = await post({
    method: 'POST',
    headers: { 'content-type': 'application/json', ...authHeaders() },
    body: JSON.stringify({ query, variables }),
  });
  return answerOf<T>(res);
}

/**
 * A query or mutation with files (the GraphQL multipart request spec): `files[i]` fills every
 * variable path in `places[i]`, so one upload may serve several fields of the operation.
 */
export async function graphqlWithFiles<T>(
  query: string,
  variables: Record<string, unknown>,
  files: ReadonlyArray<{ readonly file: Blob; readonly name: string; readonly places: readonly string[] }>,
): Promise<T> {
  const form = new FormData();
  form.append('operations', JSON.stringify({ query, variables }));
  form.append('map', JSON.stringify(Object.fromEntries(files.map((f, i) => [String(i), f.places]))));
  files.forEach((f, i) => form.append(String(i), f.file, f.name));
  const res = await post({
    method: 'POST',
    headers: { 'apollo-require-preflight': 'true', ...authHeaders() },
    body: form,
  });
  return answerOf<T>(res);
}

/** GET /metrics (Prometheus text; an admin key on the main port), or the refusal. */
export async function metricsText(): Promise<string> {
  let res: Response;
  try {
    res = await fetch('/metrics', { headers: authHeaders(), credentials: 'omit', cache: 'no-store' });
  } catch (err) {
    throw new ApiError(`the service cannot be reached (${(err as Error).message})`, 'NETWORK', 0);
  }
  if (res.status === 200) return res.text();
  const code = res.status === 401 ? 'UNAUTHENTICATED' : res.status === 403 ? 'FORBIDDEN' : 'NOT_FOUND';
  throw new ApiError(`/metrics answered HTTP ${res.status}`, code, res.status);
}

/** What the user should read for a refusal: the scope or key it needs, else the service's message. */
export function explainError(err: unknown, scope?: string): string {
  if (!(err instanceof ApiError)) return String(err);
  if (err.code === 'UNAUTHENTICATED') return 'The service needs an API key: enter one above.';
  if (err.code === 'FORBIDDEN') return `This needs a key with the ${scope ?? 'right'} scope; the key entered lacks it.`;
  if (err.code === 'RATE_LIMITED') return `Rate limited: ${err.message}`;
  return `${err.code}: ${err.message}`;
}
