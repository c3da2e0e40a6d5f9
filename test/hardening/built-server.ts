/**
 * Test support: the BUILT server (`node server/dist/cli.js serve`) as a child process with its own
 * config.ini, logs in a file, and its resident memory read from /proc. server/dist comes from the
 * vitest global setup (test/support/global-setup.ts), built once before any test file runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchHealth } from '../../server/src/cli/health-check.js';
import { waitUntil } from '../support/wait.js';

export const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
/** HARDENING_DIST=<dir> runs a server built elsewhere (experiments). */
const DIST = process.env.HARDENING_DIST ?? join(ROOT, 'server/dist');
export const CLI = join(DIST, 'cli.js');

/** Fails with what to do when there is no built server to run (the tests never build it). */
export function requireBuiltServer(): void {
  if (!existsSync(CLI)) {
    throw new Error(
      `${CLI} does not exist: run the hardening suite through vitest (make test-hardening), whose global setup ` +
        `builds server/dist, or set HARDENING_DIST`,
    );
  }
}

export type BuiltListen = { readonly port: number } | { readonly socket: string };

export interface BuiltServerOptions {
  /** Folder for config.ini, logs and the HiddenServiceDir (with a hostname file). */
  readonly dir: string;
  readonly listen: BuiltListen;
  readonly onion: string;
  readonly registry?: Record<string, string | number>;
  /** Further sections of config.ini, e.g. { Store: { Database: … }, Claims: { ClaimAfterSeconds: 0 } }. */
  readonly sections?: Record<string, Record<string, string | number>>;
  /** Extra [Log] settings (level is info). */
  readonly log?: Record<string, string | number>;
  /**
   * The server writes its log to a pipe that this process copies into the log file, instead of to
   * the file itself: for a test that limits the server's own file writes (prlimit --fsize), as a
   * full disk would, while its stdout stays writable (in the Docker stack it is a pipe too).
   */
  readonly logThroughPipe?: boolean;
  /** Extra node arguments before the script, e.g. `--import <preload>`. */
  readonly nodeArgs?: readonly string[];
  /** Environment variables for the server on top of this process's (whose REGISTRY_* are left out). */
  readonly env?: Readonly<Record<string, string>>;
}

export interface BuiltServer {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  /** The operator listener's socket ([Host] OperatorSocket): <dir>/operator.sock. */
  readonly operatorSocket: string;
  /** GET /healthz on the operator listener: its status code and JSON body. */
  health(): Promise<{ status: number; body: Record<string, unknown> }>;
  /** Resolves with the signal (or exit code) the process ended with. */
  readonly exited: Promise<NodeJS.Signals | number | null>;
  /** Resident set size in bytes, from /proc/<pid>/status. */
  rssBytes(): number;
  /** CPU time (user + system) used so far, in seconds, from /proc/<pid>/stat. */
  cpuSeconds(): number;
  /** The structured log lines written so far. */
  logs(): Array<Record<string, unknown>>;
}

/** Where the built server's operator listener is, as the images have one. */
export function operatorSocketIn(dir: string): string {
  return join(dir, 'operator.sock');
}

/** Writes config.ini for `options` and returns its path. */
export function writeConfig(options: BuiltServerOptions): string {
  const hiddenServiceDir = join(options.dir, 'hs');
  mkdirSync(hiddenServiceDir, { recursive: true });
  writeFileSync(join(hiddenServiceDir, 'hostname'), `${options.onion}\n`);
  const listen =
    'socket' in options.listen
      ? `HOST = unix:${options.listen.socket}`
      : `HOST = 127.0.0.1\nPORT = ${options.listen.port}`;
  const host = `${listen}\nOperatorSocket = ${operatorSocketIn(options.dir)}`;
  const registry = Object.entries(options.registry ?? {})
    .map(([key, value]) => `${key} = ${value}`)
    .join('\n');
  const extra = Object.entries(options.sections ?? {})
    .map(
      ([section, keys]) =>
        `[${section}]\n${Object.entries(keys)
          .map(([key, value]) => `${key} = ${value}`)
          .join('\n')}\n\n`,
    )
    .join('');
  const log = Object.entries(options.log ?? {})
    .map(([key, value]) => `\n${key} = ${value}`)
    .join('');
  const path = join(options.dir, 'config.ini');
  writeFileSync(
    path,
    `[Host]\n${host}\n\n[HiddenService]\nHiddenServiceDir = ${hiddenServiceDir}\nHiddenServicePort = ` +
      `80\n\n[Registry]\n${registry}\n\n${extra}[Log]\nlevel = info${log}\n`,
  );
  return path;
}

/**
 * The V8 flags the image runs the server with: server/Dockerfile's NODE_OPTIONS and its
 * ENTRYPOINT's node flags, read from there so that the tests run what ships (a fixed young
 * generation and the heap cap sized for compose's memory limit; pretenuring off). Node 24
 * otherwise lets the young generation grow to tens of MB more RSS on a big host, which looks like a
 * leak in the memory-flat test and is not one.
 */
export const SERVER_NODE_FLAGS: readonly string[] = (() => {
  const dockerfile = readFileSync(join(ROOT, 'server/Dockerfile'), 'utf8');
  const options = /^ENV NODE_OPTIONS="([^"]+)"$/m.exec(dockerfile)?.[1];
  if (options === undefined)
    throw new Error(
      'server/Dockerfile has no ENV NODE_OPTIONS="…" line: the tests run the server with the image\'s flags',
    );
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1];
  if (entrypoint === undefined)
    throw new Error("server/Dockerfile has no ENTRYPOINT [...] line: the tests run the server with the image's flags");
  const nodeFlags = (JSON.parse(entrypoint) as string[]).filter((arg) => arg.startsWith('--'));
  return [...options.split(/\s+/), ...nodeFlags];
})();

let starts = 0;

/** Starts `node server/dist/cli.js serve --config <dir>/config.ini` and waits until it listens. */
export async function startBuiltServer(options: BuiltServerOptions): Promise<BuiltServer> {
  requireBuiltServer();
  const config = writeConfig(options);
  starts += 1;
  const logFile = join(options.dir, `server-${starts}.log`);
  // Logs go to a file: a pipe the test process is too busy to drain would slow the server down.
  const fd = openSync(logFile, 'a');
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('REGISTRY_'))),
    ...options.env,
  };
  const output = options.logThroughPipe === true ? 'pipe' : fd;
  const child = spawn(
    process.execPath,
    [...SERVER_NODE_FLAGS, ...(options.nodeArgs ?? []), CLI, 'serve', '--config', config],
    { cwd: options.dir, env, stdio: ['ignore', output, output] },
  );
  closeSync(fd);
  for (const stream of [child.stdout, child.stderr])
    stream?.on('data', (chunk: Buffer) => appendFileSync(logFile, chunk));
  const exited = new Promise<NodeJS.Signals | number | null>((resolveExit) =>
    child.once('exit', (code, signal) => resolveExit(signal ?? code)),
  );
  const logs = (): Array<Record<string, unknown>> =>
    readFileSync(logFile, 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  let exitedEarly = false;
  void exited.then(() => {
    exitedEarly = true;
  });
  try {
    await waitUntil(
      'the built server to log "listening"',
      () => {
        if (exitedEarly)
          throw new Error(
            `the built server exited before it listened (exit ${String(child.exitCode ?? child.signalCode)})`,
          );
        return logs().some((l) => l.msg === 'listening');
      },
      { timeoutMs: 15_000, intervalMs: 20 },
    );
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}; its log:\n${readFileSync(logFile, 'utf8').slice(-2_000)}`, {
      cause: err,
    });
  }
  const operatorSocket = operatorSocketIn(options.dir);
  return {
    child,
    pid: child.pid as number,
    logFile,
    operatorSocket,
    async health() {
      const { status, body } = await fetchHealth(operatorSocket);
      return { status, body: JSON.parse(body) as Record<string, unknown> };
    },
    exited,
    logs,
    cpuSeconds() {
      return processCpuSeconds(child.pid as number);
    },
    rssBytes() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
      if (kb === undefined) throw new Error(`no VmRSS for pid ${child.pid}`);
      return Number(kb) * 1024;
    },
  };
}

/** CPU time (user + system) of a process, in seconds. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5), counted in clock ticks (USER_HZ, 100 on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A TCP port on 127.0.0.1 that was free a moment ago, for a server's config.ini. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** SIGTERM (or SIGKILL) and wait for the exit. */
export async function stopBuiltServer(
  server: BuiltServer,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<NodeJS.Signals | number | null> {
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill(signal);
  return server.exited;
}
