/**
 * Variables an operation does not declare, refused before graphql-js or Apollo look at them.
 *
 * graphql-js coerces only the variables an operation declares and ignores the others, so an
 * undeclared one is never of use: at best a client's slip, at worst a body of a million unused
 * keys, which the JSON parser and every walk over `variables` pay for while nothing reads them.
 * The declared names come from the document (every operation in it: Apollo picks one by
 * `operationName` later), parsed once per distinct document within the token limit.
 */
import { Kind, parse } from 'graphql';

const CACHE_SIZE = 1000;
const CACHE_MAX_CHARS = 16 * 1024;

export class DeclaredVariables {
  private readonly cache = new Map<string, ReadonlySet<string> | null>();

  constructor(private readonly maxTokens: number) {}

  /** The variable names `query` declares; undefined when it does not parse (Apollo says why). */
  of(query: string): ReadonlySet<string> | undefined {
    const cached = this.cache.get(query);
    if (cached !== undefined) return cached ?? undefined;
    let names: Set<string> | null = null;
    try {
      const document = parse(query, { noLocation: true, maxTokens: this.maxTokens });
      names = new Set<string>();
      for (const def of document.definitions) {
        if (def.kind !== Kind.OPERATION_DEFINITION) continue;
        for (const v of def.variableDefinitions ?? []) names.add(v.variable.name.value);
      }
    } catch {
      names = null;
    }
    if (query.length <= CACHE_MAX_CHARS) {
      if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(query, names);
    }
    return names ?? undefined;
  }

  /** The names in `variables` (a JSON object) that `query` does not declare; empty when it does not parse. */
  undeclared(query: string, variables: unknown): string[] {
    if (typeof variables !== 'object' || variables === null || Array.isArray(variables)) return [];
    const declared = this.of(query);
    if (!declared) return [];
    return Object.keys(variables).filter((name) => !declared.has(name));
  }
}
