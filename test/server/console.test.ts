/**
 * What /console serves from disk, on a bare Express app over temporary folders: the bundle with
 * its security headers, the reports' PNGs and nothing else of reports/, their index by the model
 * each report names, and a clear 404 when the console was never built. (The console itself, in a
 * browser: test/console/console.test.ts.) The last test reads the build: `npm run build` first.
 */
import { createHash } from 'crypto';
import express from 'express';
import { parse, validate } from 'graphql';
import * as fs from 'fs';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import { buildApiSchema } from '../../src/schema';
import { CONSOLE_CSP, mountConsole, reportIndex } from '../../src/server/console';

let root: string;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-console-files-'));
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function write(file: string, content: string | Buffer): void {
  fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
  fs.writeFileSync(path.join(root, file), content);
}

const report = (id: string, sha256: string) => JSON.stringify({ context: { model: { id, sha256 } } });

async function get(paths: readonly string[]): Promise<Array<{ status: number; body: string; headers: Headers }>> {
  const app = express();
  mountConsole(app, { dir: path.join(root, 'dist-console'), reportsDir: path.join(root, 'reports') });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const out = [];
    for (const p of paths) {
      const res = await fetch(`${base}${p}`, { redirect: 'manual' });
      out.push({ status: res.status, body: await res.text(), headers: res.headers });
    }
    return out;
  } finally {
    server.close();
  }
}

test('the bundle is served under the CSP; the reports give their PNGs only, never a path outside', async () => {
  write('dist-console/index.html', '<!doctype html><title>console</title>');
  write('dist-console/console.js', 'export {};');
  write('reports/evaluation.json', report('fashion-cnn', 'a'.repeat(64)));
  write('reports/roc-pgd.png', 'png bytes');
  write('reports/evaluation.md', '# report');
  write('secret.txt', 'outside');
  const [index, js, png, md, json, escape, encoded] = await get([
    '/console/',
    '/console/console.js',
    '/console/reports/roc-pgd.png',
    '/console/reports/evaluation.md',
    '/console/reports/evaluation.json',
    '/console/reports/../secret.txt',
    '/console/reports/%2e%2e/secret.txt',
  ]);
  expect([index.status, index.body]).toEqual([200, '<!doctype html><title>console</title>']);
  for (const r of [index, js, png, md])
    expect([r.headers.get('content-security-policy'), r.headers.get('x-frame-options')]).toEqual([CONSOLE_CSP, 'DENY']);
  expect([js.status, js.headers.get('content-type')]).toEqual([200, 'text/javascript; charset=utf-8']);
  expect([png.status, png.body]).toEqual([200, 'png bytes']);
  expect([md.status, json.status, escape.status, encoded.status]).toEqual([404, 404, 404, 404]);
  for (const r of [escape, encoded]) expect(r.body).not.toContain('outside');
});

test('the report index names each report by the model its context records; folders without one are left out', () => {
  write('reports/evaluation.json', report('fashion-cnn', 'a'.repeat(64)));
  write('reports/roc-b.png', 'x');
  write('reports/roc-a.png', 'x');
  write('reports/nsfw/evaluation.json', report('nsfw-mobilenetv2', 'b'.repeat(64)));
  write('reports/nsfw/roc.png', 'x');
  write('reports/stray/roc.png', 'x');
  write('reports/broken/evaluation.json', '{ not json');
  expect(reportIndex(path.join(root, 'reports'))).toEqual([
    {
      modelId: 'fashion-cnn',
      modelSha256: 'a'.repeat(64),
      plots: ['/console/reports/roc-a.png', '/console/reports/roc-b.png'],
    },
    { modelId: 'nsfw-mobilenetv2', modelSha256: 'b'.repeat(64), plots: ['/console/reports/nsfw/roc.png'] },
  ]);
  expect(reportIndex(path.join(root, 'no-such-folder'))).toEqual([]);
});

test('the report index parses a report once per version of its file', () => {
  const file = path.join(root, 'reports', 'evaluation.json');
  write('reports/evaluation.json', report('fashion-cnn', 'a'.repeat(64)));
  const parse = jest.spyOn(JSON, 'parse');
  try {
    expect(reportIndex(path.join(root, 'reports'))[0].modelId).toBe('fashion-cnn');
    expect(reportIndex(path.join(root, 'reports'))[0].modelId).toBe('fashion-cnn');
    expect(parse).toHaveBeenCalledTimes(1);
    // A new version (another size) is read again.
    write('reports/evaluation.json', report('fashion-cnn-2', 'c'.repeat(64)));
    fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
    expect(reportIndex(path.join(root, 'reports'))[0]).toMatchObject({ modelId: 'fashion-cnn-2' });
    expect(parse).toHaveBeenCalledTimes(2);
  } finally {
    parse.mockRestore();
  }
});

test('a console that was never built answers 404 saying how to build it', async () => {
  const [page] = await get(['/console/']);
  expect(page.status).toBe(404);
  expect(page.body).toBe('the console is not built: run `npm run build`');
});

/**
 * The documents the console sends (the manifest `npm run build` writes from console/src/queries.ts)
 * fit today's schema: a field renamed or removed fails here, not in an operator's browser.
 */
test('every document in the console’s manifest validates against the schema, its id its SHA-256', async () => {
  const file = path.join(__dirname, '..', '..', 'dist', 'console', 'persisted-query-manifest.json');
  const manifest = JSON.parse(fs.readFileSync(file, 'utf8')) as {
    format: string;
    operations: Array<{ id: string; name: string; type: string; body: string }>;
  };
  expect(manifest.format).toBe('apollo-persisted-query-manifest');
  expect(manifest.operations.map((o) => o.name).sort()).toEqual([
    'Compare',
    'Details',
    'EngineStats',
    'ModelIds',
    'Models',
    'Screen',
    'Screenings',
  ]);
  const schema = await buildApiSchema();
  for (const op of manifest.operations) {
    expect([op.name, validate(schema, parse(op.body)).map((e) => e.message)]).toEqual([op.name, []]);
    expect(op.id).toBe(createHash('sha256').update(op.body).digest('hex'));
  }
});
