/** schema.graphql is the SDL the code builds: a change to the API that was not re-emitted fails here. */
import * as fs from 'fs';
import * as path from 'path';
import { buildApiSchema, schemaSdl } from '../../src/schema';

test('schema.graphql matches the schema built from src/schema and src/resolvers (run `npm run schema`)', async () => {
  const committed = fs.readFileSync(path.join(__dirname, '..', '..', 'schema.graphql'), 'utf8');
  expect(schemaSdl(await buildApiSchema())).toBe(committed);
});
