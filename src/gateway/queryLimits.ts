/**
 * Limits on a GraphQL document's shape — depth, cost, aliases, directives (graphql-armor's rules)
 * and tokens (graphql-js's lexer) — checked before Apollo parses, validates or runs anything.
 *
 * Why a check of our own before Apollo rather than armor's rules inside Apollo's validation:
 * - Apollo wraps every validation error as GRAPHQL_VALIDATION_FAILED, overwriting armor's code, so
 *   a client could not tell a depth limit from a typo;
 * - a hostile document breaks the schema's rules too (a thousand nested unknown fields), and the
 *   client would get those errors by the hundred beside the one that matters;
 * - armor's token limit for Apollo throws from a parsing hook, which Apollo answers with 500.
 * Here a document over a limit gets exactly one error per limit broken, each with its own code and
 * HTTP 400; a document that does not parse is left to Apollo (GRAPHQL_PARSE_FAILED).
 *
 * Tokens are counted first, with graphql-js's own lexer (comments are not tokens) and stopping
 * at the limit, so that an enormous document is never parsed into a tree.
 *
 * A request that sends only a persisted-query hash (Apollo's APQ) has no document to check here;
 * Apollo's cache holds only documents registered by a request that sent them, and those passed.
 */
import type { ApolloServerPlugin } from '@apollo/server';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import {
  DocumentNode,
  FieldNode,
  FragmentDefinitionNode,
  GraphQLError,
  Kind,
  SelectionSetNode,
  GraphQLSchema,
  Lexer,
  parse,
  Source,
  TokenKind,
  validate,
  ValidationContext,
  ValidationRule,
} from 'graphql';
import { ATTACK_DOCUMENT_TOKENS, CostedField, TOKENS_PER_IMAGE } from '../request/fieldCosts';
import { queryLimit } from './errors';

export interface QueryLimits {
  /** Deepest selection nesting (armor counts each field level and each fragment spread). */
  readonly maxDepth: number;
  /** Armor's cost: 1 per scalar, 2 per object, children weighted 1.5× per level. */
  readonly maxCost: number;
  readonly maxAliases: number;
  readonly maxDirectives: number;
  /** Lexical tokens of the document (names, punctuation, strings and numbers). */
  readonly maxTokens: number;
  /**
   * The work a request may ask for, in rate-limit tokens (src/request/fieldCosts.ts), summed over
   * its root fields (aliases each count) and its batched operations, read from the documents.
   */
  readonly maxWork: number;
}

/**
 * Defaults, against what legitimate documents need (test/gateway/queryLimits.test.ts checks every
 * document of docs/api.md, the API tests, the benchmarks and the contract check, and the fullest
 * selection of every root field): depth 5 at most, under 100 tokens, 2 aliases. Cost is dominated
 * by armor's rule that a literal `first: N` multiplies a field's cost by N: the fullest page of
 * the audit log (`screenings(first: 500)`, every field) costs ≈ 76 000, everything else under 200;
 * so the cost limit admits that page and refuses larger literal pages and pathological documents.
 * Introspection (the landing page's, codegen's) is exempt from depth and cost, as armor does.
 */
export const DEFAULT_QUERY_LIMITS: QueryLimits = {
  maxDepth: 8,
  maxCost: 100_000,
  maxAliases: 16,
  maxDirectives: 16,
  maxTokens: 1000,
  // 16 spectra (3 each) or 21 defends of one image: an analysis page's worth; 128 aliased spectra (384) are refused.
  maxWork: 64,
};

/** The code and the limit's name of each rule, in the error's `extensions`. */
const CODES = {
  maxTokens: 'TOO_MANY_TOKENS',
  maxDepth: 'QUERY_TOO_DEEP',
  maxAliases: 'TOO_MANY_ALIASES',
  maxDirectives: 'TOO_MANY_DIRECTIVES',
  costLimit: 'QUERY_TOO_COSTLY',
} as const;

/** Armor prefixes every message with "Syntax Error: ", which these are not. */
function reject(code: string, limit: string, value: number) {
  return (ctx: ValidationContext | null, error: GraphQLError): void => {
    ctx?.reportError(queryLimit(code, limit, value, error.message.replace(/^Syntax Error: /, '')));
  };
}

/** Armor's protections for these limits: validation rules for our check, and Apollo plugins. */
function armorFor(limits: QueryLimits, production: boolean) {
  const callbacks = (code: string, limit: string, value: number) => ({
    propagateOnRejection: false,
    onReject: [reject(code, limit, value)],
  });
  return new ApolloArmor({
    maxDepth: { n: limits.maxDepth, ...callbacks(CODES.maxDepth, 'maxDepth', limits.maxDepth) },
    costLimit: { maxCost: limits.maxCost, ...callbacks(CODES.costLimit, 'maxCost', limits.maxCost) },
    maxAliases: { n: limits.maxAliases, ...callbacks(CODES.maxAliases, 'maxAliases', limits.maxAliases) },
    maxDirectives: {
      n: limits.maxDirectives,
      ...callbacks(CODES.maxDirectives, 'maxDirectives', limits.maxDirectives),
    },
    // Counted by `tokensOver` below (armor's Apollo plugin for it answers 500).
    maxTokens: { enabled: false },
    // "Did you mean …?" hands out the schema that production hides by turning introspection off.
    blockFieldSuggestion: { enabled: production },
  }).protect();
}

/** Whether `source` has more than `max` tokens; false for a document the lexer rejects (Apollo says why). */
export function tokensOver(source: string, max: number): boolean {
  const lexer = new Lexer(new Source(source));
  let count = 0;
  try {
    for (let token = lexer.advance(); token.kind !== TokenKind.EOF; token = lexer.advance()) {
      if (++count > max) return true;
    }
  } catch {
    return false;
  }
  return false;
}

/**
 * The work a document asks for (src/request/fieldCosts.ts): per operation, the sum over its root
 * fields — each alias, each field reached through a fragment — of the field's tokens per image
 * times its images (a literal list's length, else 1: a variable's list is charged when read); the
 * document's work is its costliest operation (one runs per request).
 */
export function documentWork(document: DocumentNode): number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  const selectionWork = (set: SelectionSetNode, seen: Set<string>): number =>
    set.selections.reduce((sum, sel) => {
      if (sel.kind === Kind.FIELD) return sum + fieldWork(sel);
      if (sel.kind === Kind.INLINE_FRAGMENT) return sum + selectionWork(sel.selectionSet, seen);
      const name = sel.name.value;
      const f = fragments.get(name);
      if (!f || seen.has(name)) return sum; // unknown or cyclic: validation says so
      return sum + selectionWork(f.selectionSet, new Set([...seen, name]));
    }, 0);
  let most = 0;
  for (const d of document.definitions)
    if (d.kind === Kind.OPERATION_DEFINITION) most = Math.max(most, selectionWork(d.selectionSet, new Set()));
  return most;
}

function fieldWork(field: FieldNode): number {
  const name = field.name.value;
  if (name === 'attack') return ATTACK_DOCUMENT_TOKENS;
  if (!(name in TOKENS_PER_IMAGE)) return 0;
  const images = field.arguments?.find((a) => a.name.value === 'images')?.value;
  const count = images?.kind === Kind.LIST ? Math.max(1, images.values.length) : 1;
  return TOKENS_PER_IMAGE[name as CostedField] * count;
}

const PASSED_CACHE_SIZE = 1000;
const PASSED_CACHE_MAX_CHARS = 16 * 1024;

export class QueryLimiter {
  private readonly rules: readonly ValidationRule[];
  /** Apollo plugins to install (field suggestions masked in production). */
  readonly plugins: readonly ApolloServerPlugin[];

  constructor(
    private readonly schema: GraphQLSchema,
    readonly limits: QueryLimits,
    production: boolean,
  ) {
    const armor = armorFor(limits, production);
    this.rules = armor.validationRules;
    this.plugins = armor.plugins;
  }

  /**
   * Documents that kept the limits, remembered by their text: clients send the same few documents
   * again and again, and lexing, parsing and validating each one cost ~10 % of the main thread at
   * full load (a CPU profile of `bench:api`'s concurrency 64). The limits depend on the text alone
   * (armor's cost reads literals, not variables). Bounded: at most PASSED_CACHE_SIZE documents of
   * at most PASSED_CACHE_MAX_CHARS each, the oldest forgotten first; refused documents are never
   * remembered, so a hostile client cannot fill it with them.
   */
  private readonly passed = new Map<string, number>();

  /** The limits `query` breaks, one error each; empty when it keeps them (or does not parse). */
  check(query: string): GraphQLError[] {
    return this.checkWithWork(query).errors;
  }

  /** The limits `query` breaks, and the work it asks for (0 when it does not parse). */
  checkWithWork(query: string): { errors: GraphQLError[]; work: number } {
    const known = this.passed.get(query);
    if (known !== undefined) return { errors: [], work: known };
    const checked = this.checkUncached(query);
    if (checked.errors.length === 0 && query.length <= PASSED_CACHE_MAX_CHARS) {
      if (this.passed.size >= PASSED_CACHE_SIZE) this.passed.delete(this.passed.keys().next().value!);
      this.passed.set(query, checked.work);
    }
    return checked;
  }

  /** A request's work over the limit (its operations' documents together): QUERY_TOO_COSTLY. */
  workError(work: number): GraphQLError | undefined {
    const max = this.limits.maxWork;
    if (work <= max) return undefined;
    return queryLimit(
      CODES.costLimit,
      'maxWork',
      max,
      `The request asks for ${work} units of work (src/request/fieldCosts.ts: screen 1 per image, spectrum 3, defend 3, …; aliases and batched operations add up); at most ${max} are accepted (ADVSIEVE_MAX_WORK).`,
    );
  }

  private checkUncached(query: string): { errors: GraphQLError[]; work: number } {
    const max = this.limits.maxTokens;
    if (tokensOver(query, max)) {
      return { errors: [queryLimit(CODES.maxTokens, 'maxTokens', max, `Token limit of ${max} exceeded.`)], work: 0 };
    }
    let document: DocumentNode;
    try {
      document = parse(query, { maxTokens: max });
    } catch {
      return { errors: [], work: 0 };
    }
    const work = documentWork(document);
    const errors = validate(this.schema, document, this.rules);
    // One error per limit (armor reports once per operation, and a document may hold several),
    // the shape's own limits first: a deep document is costly too, but its depth is what to fix.
    const first = new Map<unknown, GraphQLError>();
    for (const e of errors) if (!first.has(e.extensions.code)) first.set(e.extensions.code, e);
    const order: readonly unknown[] = Object.values(CODES);
    const sorted = [...first.values()].sort(
      (a, b) => order.indexOf(a.extensions.code) - order.indexOf(b.extensions.code),
    );
    // A document that alone asks for more work than a request may: refused like a costly one.
    const tooMuch = first.has(CODES.costLimit) ? undefined : this.workError(work);
    return { errors: tooMuch ? [...sorted, tooMuch] : sorted, work };
  }
}
