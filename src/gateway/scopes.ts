/**
 * Scopes per field: resolvers are decorated with type-graphql's `@Authorized('screen')` (or
 * 'oracle', 'attack', 'admin'; src/request/context.ts says what each is for), and this checker decides. A key holds exactly the scopes configured for it
 * (admin does not imply the others: a monitoring key that reads the audit log need not screen).
 * With several scopes named on a field, any one of them is enough (type-graphql's convention);
 * `@Authorized()` with none needs only a valid key. A scope no key can hold simply refuses.
 */
import type { AuthCheckerFn } from 'type-graphql';
import type { RequestContext } from '../request/context';
import { forbidden } from './errors';

/**
 * An arrow function on purpose: type-graphql treats a checker with a `prototype` as a class to
 * instantiate. Without keys configured the principal is undefined and every field is open; with
 * keys, the gateway has refused requests without a valid key before any context exists.
 */
export const scopeChecker: AuthCheckerFn<Pick<RequestContext, 'principal'>> = ({ context }, scopes) => {
  const principal = context.principal;
  if (principal === undefined || scopes.length === 0) return true;
  if (scopes.some((s) => (principal.scopes as ReadonlySet<string>).has(s))) return true;
  throw forbidden(principal.keyId, scopes);
};
