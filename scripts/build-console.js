// Builds the operator console (console/) into dist/console/: one ES module bundle (Preact and the
// pages), its stylesheet and index.html. `npm run build`, `prepare` and `npm start` run it, so a
// fresh clone's `npm ci && npm start` serves /console. Nothing inline: the page runs under a CSP
// with script-src and style-src 'self' (src/server/console.ts).
const esbuild = require('esbuild');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const source = path.join(root, 'console');
const out = path.join(root, 'dist', 'console');

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
  fs.copyFileSync(path.join(source, 'index.html'), path.join(out, 'index.html'));
  fs.copyFileSync(path.join(source, 'console.css'), path.join(out, 'console.css'));
  if (process.argv.includes('--verbose')) {
    for (const [file, o] of Object.entries(result.metafile.outputs)) console.log(`${file}: ${(o.bytes / 1024).toFixed(1)} KiB`);
  }
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
