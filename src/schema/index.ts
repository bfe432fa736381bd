/**
 * The GraphQL schema, built by type-graphql from the types in this folder and the resolvers in
 * src/resolvers/. `schemaSdl` prints it as committed in schema.graphql (sorted, as type-graphql's
 * emitSchemaFile does), so that a change to the API shows as a diff and the drift test catches a
 * forgotten `npm run schema`.
 */
import 'reflect-metadata';
import { GraphQLSchema, lexicographicSortSchema, printSchema } from 'graphql';
import { buildSchema } from 'type-graphql';
import { scopeChecker } from '../gateway/scopes';
import { AnalysisResolver } from '../resolvers/analysis.resolver';
import { AttackResolver } from '../resolvers/attack.resolver';
import { JobsResolver } from '../resolvers/jobs.resolver';
import { ModelResolver } from '../resolvers/model.resolver';
import { ScreenResolver } from '../resolvers/screen.resolver';
import { ScreeningsResolver } from '../resolvers/screenings.resolver';

export function buildApiSchema(): Promise<GraphQLSchema> {
  return buildSchema({
    resolvers: [ModelResolver, ScreenResolver, AnalysisResolver, AttackResolver, ScreeningsResolver, JobsResolver],
    validate: false,
    // `@Authorized(scope)` on a field: the caller's API key must hold the scope (FORBIDDEN otherwise).
    authChecker: scopeChecker,
  });
}

const HEADER =
  '# The advsieve GraphQL API. Generated from src/schema/ and src/resolvers/ by `npm run schema`; do not edit.\n\n';

export function schemaSdl(schema: GraphQLSchema): string {
  return HEADER + printSchema(lexicographicSortSchema(schema)) + '\n';
}
