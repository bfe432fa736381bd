/**
 * The operator console at /console: static files that `npm run build` bundles with esbuild from
 * console/ into dist/console/ (scripts/build-console.js), and the evaluation reports' PNG plots
 * under /console/reports/, read-only. The console is a client of the public GraphQL API like any
 * other (the key the user types goes in its `authorization` header), so this module serves files
 * and nothing else: no data, no key, no session.
 *
 * Every answer under /console carries a strict Content-Security-Policy: scripts, styles and
 * connections only from this origin (no inline script or style, no eval), images from this origin
 * and from `data:` (the API's PNGs come base64-encoded) and `blob:` (previews of the files picked),
 * no frames, no plugins, no forms posting elsewhere. The console then cannot be made to run a
 * script an image's name or an audit record smuggles in, nor send a key anywhere but here.
 */
import express, { type Express, type RequestHandler } from 'express';
import * as fs from 'fs';
import * as path from 'path';
import { logger } from '../util/logger';

export const CONSOLE_PATH = '/console';

export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export interface ConsoleFiles {
  /** The bundle: index.html, console.js, console.css (dist/console). */
  readonly dir: string;
  /** The evaluation reports (reports/ and reports/<model id>/); their PNGs are served. */
  readonly reportsDir: string;
}

/** Where the package keeps them: dist/console beside this file's dist/server, reports/ at the root. */
export function packagedConsoleFiles(): ConsoleFiles {
  return {
    dir: path.join(__dirname, '..', 'console'),
    reportsDir: path.join(__dirname, '..', '..', 'reports'),
  };
}

const securityHeaders: RequestHandler = (_req, res, next) => {
  res.set({
    'content-security-policy': CONSOLE_CSP,
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'permissions-policy': 'camera=(), microphone=(), geolocation=()',
  });
  next();
};

/** One evaluation report: the model it evaluated (its context) and its plots, as /console/reports/ paths. */
export interface ReportPlots {
  readonly modelId: string;
  readonly modelSha256: string | null;
  readonly plots: readonly string[];
}

/**
 * The reports under `reportsDir` (its own evaluation.json and every sub-folder's), each named by
 * the model its `context` records; a folder without a readable evaluation.json is left out.
 */
export function reportIndex(reportsDir: string): ReportPlots[] {
  const folders = ['', ...safeReaddir(reportsDir).filter((f) => isDirectory(path.join(reportsDir, f)))];
  const reports: ReportPlots[] = [];
  for (const folder of folders) {
    const dir = path.join(reportsDir, folder);
    const model = evaluatedModel(path.join(dir, 'evaluation.json'));
    if (!model) continue;
    const plots = safeReaddir(dir)
      .filter((f) => f.endsWith('.png'))
      .sort()
      .map((f) => `${CONSOLE_PATH}/reports/${folder ? `${folder}/` : ''}${f}`);
    reports.push({ modelId: model.id, modelSha256: model.sha256 ?? null, plots });
  }
  return reports;
}

type EvaluatedModel = { id: string; sha256?: string } | undefined;

/**
 * Each report's model by file version (path, size, mtime): index.json needs no key, and reading a
 * report means parsing megabytes on the service's thread, so each version is parsed once, not
 * once a request.
 */
const evaluatedModels = new Map<string, { version: string; model: EvaluatedModel }>();

function evaluatedModel(file: string): EvaluatedModel {
  let version: string;
  try {
    const st = fs.statSync(file);
    version = `${st.size}:${st.mtimeMs}`;
  } catch {
    return undefined;
  }
  const known = evaluatedModels.get(file);
  if (known?.version === version) return known.model;
  const model = readEvaluatedModel(file);
  evaluatedModels.set(file, { version, model });
  return model;
}

function readEvaluatedModel(file: string): EvaluatedModel {
  try {
    const report = JSON.parse(fs.readFileSync(file, 'utf8')) as {
      context?: { model?: { id?: unknown; sha256?: unknown } };
    };
    const model = report.context?.model;
    if (typeof model?.id !== 'string') return undefined;
    return { id: model.id, sha256: typeof model.sha256 === 'string' ? model.sha256 : undefined };
  } catch {
    return undefined;
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Only the reports' PNGs: their JSON and Markdown stay the repository's, not the web's. */
const pngOnly: RequestHandler = (req, res, next) => {
  if (/^\/[A-Za-z0-9._/-]+\.png$/.test(req.path) && !req.path.includes('..')) next();
  else res.status(404).type('text/plain').send('not found');
};

/** Mounts /console (and /console/reports/) on `app`; the log names the console's URL later. */
export function mountConsole(app: Express, files: ConsoleFiles = packagedConsoleFiles()): void {
  const built = fs.existsSync(path.join(files.dir, 'index.html'));
  if (!built) logger.warn({ dir: files.dir }, 'the console is not built (npm run build): /console answers 404');
  const router = express.Router();
  router.use(securityHeaders);
  router.get('/reports/index.json', (_req, res) => {
    res.set('cache-control', 'no-cache').json(reportIndex(files.reportsDir));
  });
  router.use('/reports', pngOnly, express.static(files.reportsDir, { index: false, dotfiles: 'deny', maxAge: '1h' }));
  router.use(
    express.static(files.dir, { index: 'index.html', dotfiles: 'deny', redirect: true, maxAge: 0, etag: true }),
  );
  router.use((_req, res) => {
    res
      .status(404)
      .type('text/plain')
      .send(built ? 'not found' : 'the console is not built: run `npm run build`');
  });
  app.use(CONSOLE_PATH, router);
}
