/**
 * A throwaway PostgreSQL server for the tests: a new cluster (initdb) in a temporary directory, on a
 * free port of 127.0.0.1, started with pg_ctl from Debian's `postgresql` package, stopped and
 * deleted afterwards. Nothing depends on a cluster the package may have created and started.
 * PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user.
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Client } from 'pg';
import { promisify } from 'util';
import { freePort } from '../../src/util/freePort';

const run = promisify(execFile);

export interface PostgresServer {
  /** URL of the database made at start. */
  readonly url: string;
  /** A new, empty database on the same server; returns its URL. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

/** The newest installed server's bin directory; fails with what to install when there is none. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root)
    ? fs
        .readdirSync(root)
        .filter(
          (v) =>
            fs.existsSync(path.join(root, v, 'bin', 'initdb')) && fs.existsSync(path.join(root, v, 'bin', 'pg_ctl')),
        )
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions.length) {
    throw new Error(
      'PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin: ' +
        "install Debian's `postgresql` package (apt-get install -y postgresql) to run the PostgreSQL audit tests",
    );
  }
  return path.join(root, versions[0], 'bin');
}

export async function startPostgres(database = 'advsieve'): Promise<PostgresServer> {
  const bin = postgresBinDir();
  const root = process.getuid?.() === 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-pg-'));
  const data = path.join(dir, 'data');
  if (root) {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    fs.chownSync(dir, uid, gid);
  }
  const as = (cmd: string, args: string[]) =>
    root ? run('runuser', ['-u', 'postgres', '--', cmd, ...args]) : run(cmd, args);
  const port = await freePort();
  const log = path.join(dir, 'server.log');
  try {
    await as(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`;
    await as(path.join(bin, 'pg_ctl'), ['-D', data, '-o', options, '-l', log, '-w', 'start']);
  } catch (err) {
    const serverLog = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`could not start a PostgreSQL server: ${(err as Error).message}\n${serverLog}`);
  }
  const urlOf = (db: string) => `postgresql://postgres@127.0.0.1:${port}/${db}`;
  const createDatabase = async (name: string) => {
    const admin = new Client({ connectionString: urlOf('postgres') });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE "${name}"`);
    } finally {
      await admin.end();
    }
    return urlOf(name);
  };
  const url = await createDatabase(database);
  let stopped = false;
  return {
    url,
    createDatabase,
    async stop() {
      if (stopped) return;
      stopped = true;
      await as(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
