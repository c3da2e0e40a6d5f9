/**
 * A real, throw-away PostgreSQL for the store tests, from Debian's `postgresql` package: `initdb`
 * into a temp dir owned by a non-root user (initdb refuses root; as root the `postgres` user runs
 * it), `pg_ctl` on a unix socket in that dir and no TCP at all. Started once per vitest run by
 * postgres-global-setup.ts; tests create a fresh database each and may stop and start the server.
 *
 * Missing binaries fail the run with one line saying how to install them: a store test that skips
 * would let a broken PostgreSQL store pass CI.
 */
import { execFile, execFileSync } from 'node:child_process';
import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** What the tests need to reach and control the server (serialisable: vitest's provide). */
export interface PostgresServer {
  /** The temp dir: data, socket and log. */
  readonly dir: string;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly binDir: string;
  /** The OS user that owns the cluster and runs its programs; also its superuser's name. */
  readonly user: string;
}

const PREFIX = 'p2p-registry-pg-';
const DEBIAN_BIN_ROOT = '/usr/lib/postgresql';
const INSTALL_HINT =
  'install them with `apt-get install -y postgresql` (or `bash .ci/install-postgres.sh`), or point P2P_PG_BIN at a ' +
  'bin folder holding initdb and pg_ctl';
const run = promisify(execFile);
/** util-linux's runuser lives in sbin, which a CI job's PATH may leave out. */
const RUNUSER =
  ['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser', '/bin/runuser'].find((path) => existsSync(path)) ??
  'runuser';

/** The newest PostgreSQL server bin folder (P2P_PG_BIN, else Debian's /usr/lib/postgresql/<n>/bin). */
export function findPostgresBin(): string {
  const fromEnv = process.env['P2P_PG_BIN'];
  const candidates = fromEnv !== undefined && fromEnv !== '' ? [fromEnv] : debianBinDirs();
  const found = candidates.find((dir) => existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl')));
  if (found === undefined) {
    throw new Error(
      `The PostgreSQL store tests need PostgreSQL's server programs (initdb, pg_ctl), found none in ` +
        `${candidates.join(', ') || `${DEBIAN_BIN_ROOT}/*/bin`}: ${INSTALL_HINT}.`,
    );
  }
  return found;
}

function debianBinDirs(): string[] {
  if (!existsSync(DEBIAN_BIN_ROOT)) return [];
  return readdirSync(DEBIAN_BIN_ROOT)
    .filter((name) => /^\d+$/.test(name))
    .sort((a, b) => Number(b) - Number(a))
    .map((name) => join(DEBIAN_BIN_ROOT, name, 'bin'));
}

/** The user to run the cluster as: ourselves, or `postgres` when we are root. */
function clusterUser(): { readonly name: string; readonly uid: number; readonly gid: number } {
  const me = userInfo();
  if (me.uid !== 0) return { name: me.username, uid: me.uid, gid: me.gid };
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', 'postgres'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      `The PostgreSQL store tests run as root and initdb refuses root, but there is no postgres user to run it as: ` +
        `${INSTALL_HINT}.`,
    );
  }
  const [, , uid, gid] = line.split(':');
  return { name: 'postgres', uid: Number(uid), gid: Number(gid) };
}

/** argv that runs `program` as the cluster's user. */
function asUser(
  server: Pick<PostgresServer, 'user' | 'binDir'>,
  program: string,
  args: readonly string[],
): [string, string[]] {
  const path = join(server.binDir, program);
  if (userInfo().uid !== 0) return [path, [...args]];
  return [RUNUSER, ['-u', server.user, '--', path, ...args]];
}

async function runAs(server: PostgresServer, program: string, args: readonly string[]): Promise<void> {
  const [file, argv] = asUser(server, program, args);
  try {
    await run(file, argv, { cwd: server.dir, timeout: 120_000 });
  } catch (err) {
    const { stdout = '', stderr = '' } = err as { stdout?: string; stderr?: string };
    throw new Error(`${program} ${args.join(' ')} failed:\n${stdout}${stderr}${logTail(server)}`.trimEnd(), {
      cause: err,
    });
  }
}

function logTail(server: PostgresServer): string {
  const log = join(server.dir, 'postgres.log');
  if (!existsSync(log)) return '';
  return `\n--- ${log} (tail)\n${readFileSync(log, 'utf8').split('\n').slice(-20).join('\n')}`;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: unknown }).code === 'EPERM';
  }
}

/** Servers left behind by runs that were killed (their owner is gone): stopped and removed. */
function removeLeftovers(binDir: string): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = join(tmpdir(), name);
    const ownerText = readFileSafe(join(dir, 'owner.pid'));
    // A folder without its owner file yet may belong to a run that is starting this very moment.
    if (ownerText === '' && Date.now() - statSync(dir).mtimeMs < 10 * 60_000) continue;
    const owner = Number(ownerText);
    if (Number.isSafeInteger(owner) && owner > 0 && isAlive(owner)) continue;
    const user = clusterUser();
    const [file, argv] = asUser({ user: user.name, binDir }, 'pg_ctl', [
      '-D',
      join(dir, 'data'),
      'stop',
      '-m',
      'immediate',
    ]);
    try {
      execFileSync(file, argv, { stdio: 'ignore', timeout: 30_000 });
    } catch {
      // Not running: nothing to stop.
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

/** initdb and start a new cluster in a temp dir. Throws one line when the binaries are missing. */
export async function startPostgres(): Promise<PostgresServer> {
  const binDir = findPostgresBin();
  const user = clusterUser();
  removeLeftovers(binDir);
  const dir = mkdtempSync(join(tmpdir(), PREFIX));
  writeFileSync(join(dir, 'owner.pid'), String(process.pid));
  const server: PostgresServer = {
    dir,
    dataDir: join(dir, 'data'),
    socketDir: join(dir, 'socket'),
    binDir,
    user: user.name,
  };
  mkdirSync(server.socketDir);
  for (const path of [dir, server.socketDir]) chownSync(path, user.uid, user.gid);
  try {
    // --no-sync: a test cluster need not survive a power cut of its own initdb.
    await runAs(server, 'initdb', [
      '-D',
      server.dataDir,
      '-U',
      user.name,
      '--auth=trust',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
      '--no-instructions',
    ]);
    await startPostgresAgain(server);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return server;
}

/** Starts the cluster's server (again), on its unix socket only; waits until it accepts connections. */
export async function startPostgresAgain(server: PostgresServer): Promise<void> {
  const options = `-k ${server.socketDir} -c listen_addresses='' -c max_connections=200 -c shared_buffers=32MB`;
  await runAs(server, 'pg_ctl', [
    '-D',
    server.dataDir,
    '-l',
    join(server.dir, 'postgres.log'),
    '-o',
    options,
    '-w',
    '-t',
    '60',
    'start',
  ]);
}

/** Stops the server: `fast` rolls back and disconnects; `immediate` is a crash (recovery at next start). */
export async function stopPostgres(server: PostgresServer, mode: 'fast' | 'immediate'): Promise<void> {
  await runAs(server, 'pg_ctl', ['-D', server.dataDir, '-m', mode, '-w', '-t', '60', 'stop']);
}

/** Stops the server and removes its dir, synchronously: usable from an exit handler. */
export function removePostgresSync(server: PostgresServer): void {
  const [file, argv] = asUser(server, 'pg_ctl', ['-D', server.dataDir, '-m', 'fast', '-w', '-t', '60', 'stop']);
  try {
    execFileSync(file, argv, { stdio: 'ignore', timeout: 70_000 });
  } catch {
    // Already stopped.
  }
  rmSync(server.dir, { recursive: true, force: true });
}

/** The connection string of a database on this server, as its superuser (trust auth on the socket). */
export function postgresUrl(server: PostgresServer, database: string): string {
  const user = encodeURIComponent(server.user);
  return `postgres://${user}@/${encodeURIComponent(database)}?host=${encodeURIComponent(server.socketDir)}`;
}
