/**
 * The GraphQL documents that legitimate clients send, collected from where they are written:
 * docs/api.md's examples, the API tests (but not the hostile, fuzz or gateway tests, which send
 * over-limit documents on purpose), the benchmarks and the shared contract check. The default
 * query limits must admit every one of them.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parse } from 'graphql';

const ROOT = path.join(__dirname, '..', '..');
/** The shared contract check, beside the checkout when there is one. */
export const CONTRACT = path.join(ROOT, '..', 'shared', 'checks', 'contract.py');
const OPENING = /^\s*(query|mutation|subscription|fragment|\{)/;

function parses(text: string): boolean {
  try {
    parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Skips a template literal's `${…}` (which may hold strings and templates of its own); returns the index after it. */
function skipInterpolation(src: string, i: number): number {
  let depth = 1;
  while (i < src.length && depth > 0) {
    const c = src[i];
    if (c === '{') depth++;
    else if (c === '}') depth--;
    else if (c === '`' || c === "'" || c === '"') {
      i = readLiteral(src, i).end;
      continue;
    }
    i++;
  }
  return i;
}

/** The string literal starting at `i` (quoted or template): its text, whether it interpolates, and where it ends. */
function readLiteral(src: string, i: number): { text: string; interpolated: boolean; end: number } {
  const quote = src[i];
  let j = i + 1;
  let text = '';
  let interpolated = false;
  while (j < src.length && src[j] !== quote && (quote === '`' || src[j] !== '\n')) {
    if (src[j] === '\\') {
      text += src[j + 1];
      j += 2;
    } else if (quote === '`' && src[j] === '$' && src[j + 1] === '{') {
      interpolated = true;
      j = skipInterpolation(src, j + 2);
    } else text += src[j++];
  }
  return { text, interpolated, end: j + 1 };
}

/** String literals of a TypeScript file (quoted, or templates without interpolation) that parse as GraphQL. */
function fromSource(src: string): string[] {
  const found: string[] = [];
  let i = 0;
  while (i < src.length) {
    if (src.startsWith('//', i)) i = src.indexOf('\n', i) >>> 0 || src.length;
    else if (src.startsWith('/*', i)) i = src.indexOf('*/', i) + 2 || src.length;
    else if (src[i] === '`' || src[i] === "'" || src[i] === '"') {
      const { text, interpolated, end } = readLiteral(src, i);
      if (!interpolated && OPENING.test(text) && /[{}]/.test(text) && parses(text)) found.push(text);
      i = end;
    } else i++;
  }
  return found;
}

/** `"query": "…"` values of docs/api.md's shell examples (JSON, with the shell's \$ and \" escapes). */
function fromDocs(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/\\?"query\\?":\s*\\?"((?:[^"\\]|\\.)*?)\\?"(?=[,}\s])/g)) {
    const body = m[1].replace(/\\\$/g, '$').replace(/\\"/g, '"');
    if (OPENING.test(body) && parses(body)) found.push(body);
  }
  return found;
}

/** contract.py's query: Python string literals concatenated into Q. */
function fromContract(text: string): string[] {
  const q = /^Q = \(([\s\S]*?)\)\n/m.exec(text)?.[1];
  if (!q) return [];
  return [[...q.matchAll(/'([^']*)'/g)].map((m) => m[1]).join('')];
}

export function legitimateDocuments(): Array<{ source: string; document: string }> {
  const out: Array<{ source: string; document: string }> = [];
  const add = (source: string, docs: string[]) => docs.forEach((document) => out.push({ source, document }));
  const testDir = path.join(ROOT, 'test', 'api');
  for (const f of fs.readdirSync(testDir).sort()) {
    if (!f.endsWith('.ts') || /^(gateway|hostile|fuzz)/.test(f)) continue;
    add(`test/api/${f}`, fromSource(fs.readFileSync(path.join(testDir, f), 'utf8')));
  }
  const benchDir = path.join(ROOT, 'src', 'bench');
  for (const f of fs.readdirSync(benchDir).sort())
    if (f.endsWith('.ts')) add(`src/bench/${f}`, fromSource(fs.readFileSync(path.join(benchDir, f), 'utf8')));
  add('docs/api.md', fromDocs(fs.readFileSync(path.join(ROOT, 'docs', 'api.md'), 'utf8')));
  if (fs.existsSync(CONTRACT)) add('contract.py', fromContract(fs.readFileSync(CONTRACT, 'utf8')));
  return out;
}
