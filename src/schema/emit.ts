/** `npm run schema`: writes the SDL of the API to schema.graphql at the package root. */
import * as fs from 'fs';
import * as path from 'path';
import { PACKAGE_ROOT } from '../util/paths';
import { buildApiSchema, schemaSdl } from './index';

export const SCHEMA_FILE = path.join(PACKAGE_ROOT, 'schema.graphql');

if (require.main === module) {
  buildApiSchema()
    .then((schema) => {
      fs.writeFileSync(SCHEMA_FILE, schemaSdl(schema));
      process.stdout.write(`wrote ${SCHEMA_FILE}\n`);
    })
    .catch((err: Error) => {
      process.stderr.write(`schema: ${err.message}\n`);
      process.exit(1);
    });
}
