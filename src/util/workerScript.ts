import * as fs from 'fs';
import * as path from 'path';

/**
 * Path of a worker entry point's compiled JavaScript. Worker threads need plain JS: from `dist/`
 * the file sits beside its caller; when the caller runs from `src/` (ts-jest) the build's copy is
 * used, so tests run after `npm run build`.
 */
export function workerScript(callerDir: string, base: string): string {
  const beside = path.join(callerDir, `${base}.js`);
  if (fs.existsSync(beside)) return beside;
  const root = path.resolve(__dirname, '..', '..');
  const rel = path.relative(path.join(root, 'src'), callerDir);
  const built = path.join(root, 'dist', rel, `${base}.js`);
  if (!fs.existsSync(built)) throw new Error(`worker script ${built} not found: run 'npm run build' first`);
  return built;
}
