// Builds the operator console (console/) into dist/console/: one ES module bundle (Preact and the
// pages), its stylesheet and index.html. `npm run build`, `prepare` and `npm start` run it, so a
// fresh clone's `npm ci && npm start` serves /console. Nothing inline: the page runs under a CSP
// with script-src and style-src 'self' (src/server/console.ts).
const esbuild = require('esbuild');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.join(__dirname, '..');
const source = path.join(root, 'console');
const out = path.join(root, 'dist', 'console');

/** Every GraphQL document console/src/queries.ts exports (the console sends no other). */
async function consoleDocuments() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-console-queries-'));
  try {
    const file = path.join(dir, 'queries.js');
    await esbuild.build({
      entryPoints: [path.join(source, 'src', 'queries.ts')],
      bundle: true,
      format: 'cjs',
      platform: 'node',
      outfile: file,
    });
    const exported = require(file);
    return Object.values(exported).filter((v) => typeof v === 'string' && /^(query|mutation)\b/.test(v));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Apollo's persisted-query manifest of those documents: a service with trusted documents on
 * (ADVSIEVE_TRUSTED_DOCUMENTS) runs the console once its manifest lists them too (docs/console.md).
 */
function writeManifest(documents, file) {
  const operations = documents.map((body) => {
    const [, type, name] = /^(query|mutation)\s+(\w+)/.exec(body);
    return { id: crypto.createHash('sha256').update(body).digest('hex'), name, type, body };
  });
  const manifest = { format: 'apollo-persisted-query-manifest', version: 1, operations };
  fs.writeFileSync(file, `${JSON.stringify(manifest, null, 2)}\n`);
}

async function main() {
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const result = await esbuild.build({
    entryPoints: { console: path.join(source, 'src', 'main.tsx') },
    bundle: true,
    format: 'esm',
    target: ['es2022'],
    minify: true,
    sourcemap: true,
    jsx: 'automatic',
    jsxImportSource: 'preact',
    outdir: out,
    logLevel: 'warning',
    legalComments: 'linked',
    metafile: true,
  });
  writeManifest(await consoleDocuments(), path.join(out, 'persisted-query-manifest.json'));
  fs.copyFileSync(path.join(source, 'index.html'), path.join(out, 'index.html'));
  fs.copyFileSync(path.join(source, 'console.css'), path.join(out, 'console.css'));
  if (process.argv.includes('--verbose')) {
    for (const [file, o] of Object.entries(result.metafile.outputs))
      console.log(`${file}: ${(o.bytes / 1024).toFixed(1)} KiB`);
  }
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
