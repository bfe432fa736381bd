/**
 * Where a job's uploaded images wait between submission and screening: a directory that every
 * replica and worker mounts (ADVSIEVE_JOB_SPOOL), one file per distinct content, named by its
 * SHA-256 (`ab/abcdef…`). Redis holds only the names: a million uploads of 100 KB would be 100 GB
 * of Redis memory, and its persistence is no place for them. Content addressing makes a write
 * idempotent (a file sent twice, by two jobs or by a client's retry, is stored once) and lets a
 * consumer check what it reads: the bytes must hash to their name.
 */
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

const SHA256 = /^[0-9a-f]{64}$/;

export class Spool {
  constructor(readonly dir: string) {}

  /** The file of a content hash. */
  pathOf(sha256: string): string {
    if (!SHA256.test(sha256)) throw new Error(`not a SHA-256: '${sha256.slice(0, 80)}'`);
    return path.join(this.dir, sha256.slice(0, 2), sha256);
  }

  /** The name the bytes are stored under. */
  static nameOf(bytes: Buffer): string {
    return createHash('sha256').update(bytes).digest('hex');
  }

  /** Stores the bytes (once: a file already there is left alone) and returns their SHA-256. */
  async put(bytes: Buffer): Promise<string> {
    const sha256 = Spool.nameOf(bytes);
    const file = this.pathOf(sha256);
    if (await exists(file)) return sha256;
    await fs.promises.mkdir(path.dirname(file), { recursive: true });
    // Written aside then renamed: a consumer never reads half a file, and two writers of the same
    // content both succeed (rename replaces atomically with identical bytes).
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    await fs.promises.writeFile(tmp, bytes);
    await fs.promises.rename(tmp, file);
    return sha256;
  }

  /** The bytes of a content hash; throws when the file is missing or does not hash to its name. */
  async read(sha256: string): Promise<Buffer> {
    const bytes = await fs.promises.readFile(this.pathOf(sha256));
    if (createHash('sha256').update(bytes).digest('hex') !== sha256)
      throw new Error(`spool file ${sha256} does not hash to its name`);
    return bytes;
  }

  /**
   * Removes a file that no unfinished job held when `referenced` was last false. A job submitted
   * meanwhile takes its reference before it writes (src/jobs/jobStore.ts, submit), so the file is
   * first moved aside, then the reference checked again: a file taken again is put back (unless
   * its new job wrote it anew), else deleted. No job ever finds its file gone.
   */
  async remove(sha256: string, referenced: () => Promise<boolean>): Promise<void> {
    const file = this.pathOf(sha256);
    const aside = `${file}.${randomBytes(6).toString('hex')}.removing`;
    try {
      await fs.promises.rename(file, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // removed already
      throw err;
    }
    try {
      if (await referenced()) await fs.promises.link(aside, file).catch(ignoreCode('EEXIST'));
    } finally {
      await fs.promises.unlink(aside);
    }
  }
}

function ignoreCode(code: string) {
  return (err: NodeJS.ErrnoException) => {
    if (err.code !== code) throw err;
  };
}

async function exists(file: string): Promise<boolean> {
  return fs.promises.access(file).then(
    () => true,
    () => false,
  );
}
