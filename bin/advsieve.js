#!/usr/bin/env node
'use strict';
const { buildProgram } = require('../dist/cli/index.js');
buildProgram()
  .parseAsync(process.argv)
  .then(() => process.exit(process.exitCode ?? 0))
  .catch((err) => {
    process.stderr.write(`advsieve: ${err.message}\n`);
    process.exit(1);
  });
