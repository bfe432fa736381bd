/**
 * Query limits: the defaults admit every legitimate document (those written in the docs, the API
 * tests, the benchmarks and the contract check, the fullest selection of every root field, a full
 * page of the audit log, the introspection query), and each limit refuses with its own code.
 */
import * as fs from 'fs';
import {
  getIntrospectionQuery,
  getNamedType,
  GraphQLField,
  GraphQLObjectType,
  GraphQLSchema,
  isInputType,
  isLeafType,
  isNonNullType,
  isObjectType,
} from 'graphql';
import { DEFAULT_QUERY_LIMITS, QueryLimiter, tokensOver } from '../../src/gateway/queryLimits';
import { buildApiSchema } from '../../src/schema';
import { CONTRACT, legitimateDocuments } from './legitDocuments';

let schema: GraphQLSchema;
let limiter: QueryLimiter;

beforeAll(async () => {
  schema = await buildApiSchema();
  limiter = new QueryLimiter(schema, DEFAULT_QUERY_LIMITS, false);
});

/** Every field of `type`, recursively (the schema has no cycles). */
function fullSelection(type: GraphQLObjectType): string {
  const fields = Object.values(type.getFields()).map((f) => {
    const named = getNamedType(f.type);
    return isObjectType(named) ? `${f.name} ${fullSelection(named)}` : f.name;
  });
  return `{ ${fields.join(' ')} }`;
}

/** An operation selecting everything a root field gives; required arguments as variables, `first` at its maximum. */
function fullDocument(operation: 'query' | 'mutation', field: GraphQLField<unknown, unknown>): string {
  const variables: string[] = [];
  const args = field.args.flatMap((a) => {
    if (a.name === 'first') return ['first: 500'];
    if (!isNonNullType(a.type) || !isInputType(a.type)) return [];
    variables.push(`$${a.name}: ${String(a.type)}`);
    return [`${a.name}: $${a.name}`];
  });
  const named = getNamedType(field.type);
  const selection = isLeafType(named) ? '' : fullSelection(named as GraphQLObjectType);
  const vars = variables.length ? `(${variables.join(', ')})` : '';
  const call = args.length ? `(${args.join(', ')})` : '';
  return `${operation}${vars} { ${field.name}${call} ${selection} }`;
}

test('the defaults admit every document the docs, tests, benchmarks and contract check send', () => {
  const docs = legitimateDocuments();
  const sources = new Set(docs.map((d) => d.source));
  expect(docs.length).toBeGreaterThanOrEqual(20);
  for (const s of ['docs/api.md', 'test/api/api.test.ts']) expect(sources).toContain(s);
  if (fs.existsSync(CONTRACT)) expect(sources).toContain('contract.py');
  const refused = docs
    .map((d) => ({ ...d, errors: limiter.check(d.document).map((e) => e.message) }))
    .filter((d) => d.errors.length > 0);
  expect(refused).toEqual([]);
});

test('the defaults admit the fullest selection of every root field (a full audit page too) and introspection', () => {
  const roots: Array<['query' | 'mutation', GraphQLObjectType]> = [
    ['query', schema.getQueryType()!],
    ['mutation', schema.getMutationType()!],
  ];
  const documents = roots.flatMap(([op, type]) => Object.values(type.getFields()).map((f) => fullDocument(op, f)));
  expect(documents.length).toBeGreaterThanOrEqual(9);
  for (const d of documents) expect({ d, errors: limiter.check(d) }).toEqual({ d, errors: [] });
  expect(limiter.check(getIntrospectionQuery({ descriptions: true, specifiedByUrl: true }))).toEqual([]);
});

function codes(query: string) {
  return limiter.check(query).map((e) => [e.extensions.code, e.extensions.limit, e.extensions.limitValue]);
}

test('each limit refuses with its own code, the limit broken and its value', () => {
  let nested = 'b';
  for (let i = 0; i < 20; i++) nested = `a { ${nested} }`;
  expect(codes(`{ model { ${nested} } }`)).toEqual([['QUERY_TOO_DEEP', 'maxDepth', 8]]);
  const aliases = `{ ${Array.from({ length: 17 }, (_, i) => `a${i}: model { id }`).join(' ')} }`;
  expect(codes(aliases)).toEqual([['TOO_MANY_ALIASES', 'maxAliases', 16]]);
  const directives = `{ model ${'@include(if: true) '.repeat(17)} { id } }`;
  expect(codes(directives)).toEqual([['TOO_MANY_DIRECTIVES', 'maxDirectives', 16]]);
  expect(codes(`{ model { ${'id '.repeat(1000)} } }`)).toEqual([['TOO_MANY_TOKENS', 'maxTokens', 1000]]);
  const costly = `{ screenings(first: 100000) { edges { node { id score } } } }`;
  expect(codes(costly)).toEqual([['QUERY_TOO_COSTLY', 'maxCost', DEFAULT_QUERY_LIMITS.maxCost]]);
  // Deep enough to be costly too: both are said, depth first (it is what to fix).
  for (let i = 0; i < 10; i++) nested = `a { ${nested} }`;
  expect(codes(`{ model { ${nested} } }`).map((c) => c[0])).toEqual(['QUERY_TOO_DEEP', 'QUERY_TOO_COSTLY']);
  // Several limits broken: one error each. The message is armor's, without its "Syntax Error:" prefix.
  const tight = new QueryLimiter(schema, { ...DEFAULT_QUERY_LIMITS, maxDepth: 2, maxAliases: 1 }, false);
  const both = tight.check('{ a: model { calibration { createdAt } } b: model { id } }');
  expect(both.map((e) => e.extensions.code)).toEqual(['QUERY_TOO_DEEP', 'TOO_MANY_ALIASES']);
  const deep = both[0];
  expect(deep.message).toBe('Query depth limit of 2 exceeded, found 3.');
  expect(deep.extensions.http).toMatchObject({ status: 400 });
});

test('a huge document is refused by counting tokens, without being parsed; comments are not tokens', () => {
  const huge = '{ ' + 'model { id } '.repeat(500_000) + '}';
  const start = performance.now();
  expect(codes(huge)[0][0]).toBe('TOO_MANY_TOKENS');
  // Counting takes a few ms; graphql-js parsing these 6.5 MB took 4.5 s (measured with parse()). The bound leaves room
  // for a loaded machine (60 ms was measured once on 2 busy cores).
  expect(performance.now() - start).toBeLessThan(300);
  expect(tokensOver(`# ${'x '.repeat(5000)}\n{ model { id } }`, 6)).toBe(false);
  expect(tokensOver('{ model { id } }', 5)).toBe(true);
});

test('documents that do not parse, or break the schema, are left to Apollo; fragment cycles do not hang', () => {
  expect(limiter.check('{ model { id ')).toEqual([]);
  expect(limiter.check('{ nope { nope } }')).toEqual([]);
  expect(limiter.check('query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }')).toEqual([]);
});

test('documents that kept the limits are remembered; refused ones are checked, and refused, every time', () => {
  const fresh = new QueryLimiter(schema, DEFAULT_QUERY_LIMITS, false);
  const ok = '{ model { id labels } }';
  const deep = `{ model { ${'a { '.repeat(12)}b${' }'.repeat(12)} } }`;
  // The full check (lexer, parser, armor's rules) is the private checkUncached.
  const validate = jest.spyOn(QueryLimiter.prototype as unknown as { checkUncached: () => unknown }, 'checkUncached');
  expect(fresh.check(ok)).toEqual([]);
  expect(fresh.check(ok)).toEqual([]);
  expect(validate).toHaveBeenCalledTimes(1); // the second time from memory
  expect(fresh.check(deep).map((e) => e.extensions.code)).toEqual(['QUERY_TOO_DEEP']);
  expect(fresh.check(deep).map((e) => e.extensions.code)).toEqual(['QUERY_TOO_DEEP']);
  expect(validate).toHaveBeenCalledTimes(3);
  // Many distinct documents: the oldest are forgotten (checked again), the check still answers.
  for (let i = 0; i < 1500; i++) expect(fresh.check(`{ model { id } x${i}: model { id } }`)).toEqual([]);
  expect(fresh.check(ok)).toEqual([]);
  expect(validate).toHaveBeenCalledTimes(3 + 1500 + 1);
  validate.mockRestore();
});
