/**
 * Server-side directories a job may screen: only under a root the operator allowed
 * (ADVSIEVE_JOB_DIRS). A path is checked twice — as written (no `..` out of a root) and as the
 * file system resolves it (no symbolic link out of one) — and the walk never follows a link: a
 * client with the `jobs` scope reads images of the allowed trees, nothing else on the server.
 */
import * as fs from 'fs';
import * as path from 'path';

/** Why a directory was refused: outside every allowed root (or none allowed), or not a directory. */
export class JobDirectoryError extends Error {
  constructor(
    message: string,
    readonly reason: 'not-allowed' | 'not-a-directory',
  ) {
    super(message);
    this.name = 'JobDirectoryError';
  }
}

function within(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/**
 * The directory's real path, when it lies under one of `roots` both as written and once resolved;
 * throws JobDirectoryError otherwise. The message never says what exists outside the roots.
 */
export async function allowedDirectory(requested: string, roots: readonly string[]): Promise<string> {
  const refuse = () =>
    new JobDirectoryError(
      roots.length
        ? `directory '${requested.slice(0, 200)}' is not under a directory this service allows jobs to read (ADVSIEVE_JOB_DIRS)`
        : 'this service allows no directory jobs (ADVSIEVE_JOB_DIRS is empty): upload the images',
      'not-allowed',
    );
  if (!path.isAbsolute(requested) || requested.includes('\0')) throw refuse();
  const lexical = path.resolve(requested);
  const root = roots.find((r) => within(r, lexical));
  if (!root) throw refuse();
  const realRoot = await fs.promises.realpath(root).catch(() => root);
  let real: string;
  try {
    real = await fs.promises.realpath(lexical);
  } catch {
    // Missing, or a link to something missing: "does not exist" only when what does exist of the
    // path lies in the root, so that a link in it does not tell what exists outside it.
    const leads = await nearestReal(lexical);
    if (leads === undefined || !within(realRoot, leads)) throw refuse();
    throw new JobDirectoryError(`directory '${requested.slice(0, 200)}' does not exist`, 'not-a-directory');
  }
  if (!within(realRoot, real)) throw refuse(); // a link out of the root
  if (!(await fs.promises.stat(real)).isDirectory())
    throw new JobDirectoryError(`'${requested.slice(0, 200)}' is not a directory`, 'not-a-directory');
  return real;
}

/**
 * Where `p` leads as far as it exists: the real path of its deepest ancestor that resolves, a
 * dangling link followed to where it points. Undefined past 40 links (a loop).
 */
async function nearestReal(p: string, links = 0): Promise<string | undefined> {
  if (links > 40) return undefined;
  for (let at = p; ; at = path.dirname(at)) {
    const real = await fs.promises.realpath(at).catch(() => undefined);
    if (real !== undefined) return real;
    const target = await fs.promises.readlink(at).catch(() => undefined);
    if (target !== undefined) return nearestReal(path.resolve(path.dirname(at), target), links + 1);
    if (at === path.dirname(at)) return at;
  }
}

/**
 * Every regular file under `dir`, as paths relative to it, sorted by name at each level; hidden
 * names ('.') skipped, symbolic links neither followed nor listed. Stops past `max` files (the
 * caller refuses the job then) so that a huge tree is not listed whole.
 */
export async function listImages(dir: string, max: number): Promise<string[]> {
  const files: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = (await fs.promises.readdir(path.join(dir, rel), { withFileTypes: true }))
      .filter((e) => !e.name.startsWith('.'))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (files.length > max) return;
      const child = rel === '' ? e.name : path.join(rel, e.name);
      if (e.isDirectory()) await walk(child);
      else if (e.isFile()) files.push(child);
    }
  };
  await walk('');
  return files;
}

/**
 * A listed file's bytes, read when its batch is screened: refused if it has become a link out of
 * the job's directory since the listing (the real path is checked again), or is over `maxBytes`.
 */
export async function readJobFile(
  dir: string,
  rel: string,
  maxBytes: number,
): Promise<Buffer | { code: 'UNREADABLE_FILE' | 'IMAGE_TOO_LARGE'; message: string }> {
  try {
    const real = await fs.promises.realpath(path.join(dir, rel));
    if (!within(dir, real)) return { code: 'UNREADABLE_FILE', message: `${rel}: leads outside the job's directory` };
    const handle = await fs.promises.open(real, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const { size } = await handle.stat();
      if (size > maxBytes)
        return { code: 'IMAGE_TOO_LARGE', message: `${rel}: ${size} bytes; at most ${maxBytes} are accepted` };
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  } catch (err) {
    return { code: 'UNREADABLE_FILE', message: `${rel}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}` };
  }
}
