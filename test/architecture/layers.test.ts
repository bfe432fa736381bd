/**
 * The layering of the API's folders, read from the import statements of src/: the request context
 * (src/request/) is below the gateway and the audit log, which are below the HTTP server; nothing
 * imports upwards, and no set of modules imports each other in a circle (type-only imports count:
 * they make the same knot for a reader, even where the compiler erases them).
 */
import * as fs from 'fs';
import * as path from 'path';

const SRC = path.join(__dirname, '..', '..', 'src');

/** Module (path under src/, no extension) → the modules of src/ it imports. */
function importGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts')) {
        const from = path.relative(SRC, full).replace(/\.ts$/, '');
        const targets = new Set<string>();
        for (const m of fs.readFileSync(full, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
          let target = path.normalize(path.join(path.dirname(from), m[1]));
          if (fs.existsSync(path.join(SRC, target)) && fs.statSync(path.join(SRC, target)).isDirectory())
            target = path.join(target, 'index');
          targets.add(target);
        }
        graph.set(from, targets);
      }
    }
  };
  walk(SRC);
  return graph;
}

/** Strongly connected components of more than one module (Tarjan). */
function cycles(graph: Map<string, Set<string>>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

const graph = importGraph();

function importsInto(folder: string, forbidden: readonly string[]): string[] {
  return [...graph]
    .filter(([from]) => from.startsWith(`${folder}/`))
    .flatMap(([from, targets]) =>
      [...targets].filter((t) => forbidden.some((f) => t.startsWith(`${f}/`))).map((t) => `${from} → ${t}`),
    );
}

describe('module layering', () => {
  it('reads the import graph (the checks below are not vacuous)', () => {
    expect(graph.get('server/server')).toContain('gateway/gateway');
    expect(graph.get('audit/records')).toContain('request/context');
  });

  it('has no import cycle anywhere in src/', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('src/request/ imports none of the layers above it', () => {
    expect(importsInto('request', ['server', 'gateway', 'audit', 'resolvers', 'schema'])).toEqual([]);
  });

  it('the gateway and the audit log never import the HTTP server', () => {
    expect(importsInto('gateway', ['server'])).toEqual([]);
    expect(importsInto('audit', ['server'])).toEqual([]);
  });
});

describe('the cycle finder', () => {
  it('finds a circle of three and ignores a chain', () => {
    const g = new Map([
      ['a', new Set(['b'])],
      ['b', new Set(['c'])],
      ['c', new Set(['a', 'd'])],
      ['d', new Set<string>()],
    ]);
    expect(cycles(g)).toEqual([['a', 'b', 'c']]);
  });
});
