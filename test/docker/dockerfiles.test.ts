/**
 * The three images (CPU, CUDA, WebGPU) cannot be built here (no Docker engine), so their
 * invariants are read from the files: every COPY source exists, each has a .dockerignore that
 * keeps node_modules, .git and local data out of the context, all serve alike (same entry point,
 * command, port, health check, non-root user, audit volume), and a stage that may compile native
 * addons (better-sqlite3 12 needs C++20) has a compiler that can.
 */
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.join(__dirname, '..', '..');
const DOCKERFILES = ['docker/Dockerfile', 'docker/Dockerfile.gpu', 'docker/Dockerfile.webgpu'];

interface Instruction {
  readonly op: string;
  readonly args: string;
}

/** Instructions per stage, continuation lines joined, comments dropped. */
function stages(file: string): Instruction[][] {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8').replace(/\\\r?\n/g, ' ');
  const result: Instruction[][] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [op, ...rest] = line.split(/\s+/);
    const instruction = { op: op.toUpperCase(), args: rest.join(' ') };
    if (instruction.op === 'FROM') result.push([]);
    result[result.length - 1].push(instruction);
  }
  return result;
}

const all = (s: Instruction[], op: string) => s.filter((i) => i.op === op).map((i) => i.args);

describe.each(DOCKERFILES)('%s', (file) => {
  const parsed = stages(file);
  const final = parsed[parsed.length - 1];

  test('every COPY from the build context names files that exist', () => {
    const sources = parsed
      .flat()
      .filter((i) => i.op === 'COPY' && !/--from=/.test(i.args))
      .flatMap((i) => {
        const words = i.args.split(/\s+/).filter((w) => !w.startsWith('--'));
        return words.slice(0, -1);
      });
    expect(sources.length).toBeGreaterThan(3);
    for (const src of sources) expect([src, fs.existsSync(path.join(ROOT, src))]).toEqual([src, true]);
  });

  test('a .dockerignore beside it keeps node_modules, .git, dist and local data out of the context', () => {
    const ignore = path.join(ROOT, `${file}.dockerignore`);
    expect(fs.existsSync(ignore)).toBe(true);
    const lines = fs
      .readFileSync(ignore, 'utf8')
      .split('\n')
      .map((l) => l.trim());
    for (const entry of ['node_modules', '.git', 'dist', 'data']) expect(lines).toContain(entry);
  });

  test('serves the API like the others: entry point, command, port, health check, drain', () => {
    expect(all(final, 'ENTRYPOINT')).toEqual(['["/app/docker/entrypoint.sh"]']);
    expect(all(final, 'CMD')).toEqual(['["serve"]']);
    expect(all(final, 'EXPOSE')).toEqual(['4000']);
    expect(all(final, 'STOPSIGNAL')).toEqual(['SIGTERM']);
    const health = all(final, 'HEALTHCHECK');
    expect(health).toHaveLength(1);
    expect(health[0]).toContain('CMD ["/app/docker/entrypoint.sh", "healthcheck"]');
    const env = all(final, 'ENV').join(' ');
    expect(env).toMatch(/\bPORT=4000\b/);
    expect(env).toMatch(/\bNODE_ENV=production\b/);
    expect(env).toMatch(/\bADVSIEVE_AUDIT_DB=\/var\/lib\/advsieve\//);
    expect(all(final, 'VOLUME')).toEqual(['/var/lib/advsieve']);
    const copied = all(final, 'COPY').join('\n');
    for (const needed of ['docker/entrypoint.sh', 'models', 'bin', 'schema.graphql']) expect(copied).toContain(needed);
  });

  test('runs as a user other than root', () => {
    const users = all(final, 'USER');
    expect(users.length).toBe(1);
    expect(users[0]).not.toMatch(/^(root|0)(:|$)/);
  });

  test('a stage that runs npm ci can compile C++20 (better-sqlite3 12 falls back to building from source)', () => {
    for (const stage of parsed.filter((s) => s.some((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args)))) {
      const base = stage[0].args;
      const env = all(stage, 'ENV').join(' ');
      const modernBase = /node:\d+-(bookworm|trixie)/.test(base);
      const modernCompiler = /\bCXX=g\+\+-(1\d)\b/.test(env);
      expect([base, modernBase || modernCompiler]).toEqual([base, true]);
      // The compiler named must also be installed in that stage.
      const cxx = /\bCXX=(g\+\+-\d+)/.exec(env)?.[1];
      if (cxx) expect(all(stage, 'RUN').join(' ')).toContain(cxx);
    }
  });
});

test('the entry point the images run exists and is a shell script with a healthcheck', () => {
  const entry = fs.readFileSync(path.join(ROOT, 'docker', 'entrypoint.sh'), 'utf8');
  expect(entry.startsWith('#!/bin/sh')).toBe(true);
  expect(entry).toMatch(/^\s*healthcheck\)/m);
});
