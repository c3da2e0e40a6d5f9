/**
 * The registry under test, as the bench starts it: the built CLI (production mode, the image's V8
 * flags) with its own temp config.ini and HiddenServiceDir, and what the bench asks of it.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeIdentity } from './identities.mjs';
import { CAN_PIN, openFilesLimit, spawnNode } from './procs.mjs';
import { clientFrame, WireConnection } from './wire.mjs';

/** The split of the 2-core machine: the processes under test on one CPU, the load on the other. */
export const SERVER_CPU = 0;
export const LOAD_CPU = 1;
export const NOFILE = 65_536;
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BUILT_CLI = join(ROOT, 'server/dist/cli.js');

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

/** `count` loopback source addresses from 127.0.0.<from>: ephemeral ports never run out. */
export function addresses(from, count) {
  return Array.from({ length: count }, (_, i) => `127.0.0.${from + i}`);
}

/** The operator listener's socket of a bench server whose files are in `dir` (/healthz is there). */
export function operatorSocketIn(dir) {
  return join(dir, 'operator.sock');
}

/**
 * The [Host] and [HiddenService] sections of a bench server's config.ini: loopback `port`, the
 * operator socket in `dir`, and a HiddenServiceDir under `dir` (made here) with a valid `hostname`.
 */
export function listenerSections(dir, port) {
  const hsDir = join(dir, 'hs');
  mkdirSync(hsDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(hsDir, 'hostname'), `${makeIdentity('registry').address}\n`);
  return (
    `[Host]\nHOST = 127.0.0.1\nPORT = ${port}\nOperatorSocket = ` +
    `${operatorSocketIn(dir)}\n\n[HiddenService]\nHiddenServiceDir = ${hsDir}\nHiddenServicePort = 80\n` +
    `HostnameTimeoutSeconds = 5\n`
  );
}

/**
 * The bench's config.ini. The claim database is in the server's temp dir (never the checkout's
 * ./data); `claims` (phase `claims`) names another file and ClaimAfterSeconds; `leaseSeconds`
 * goes with a postgres:// database (a cluster instance).
 */
export function serverConfig(dir, port, heartbeatSeconds, claims = {}) {
  const ini = `; written by the bench: limits raised so that they are not what the bench measures
${listenerSections(dir, port)}
[Registry]
MaxPeers = 100000
MaxConnections = 100000
MaxMessageBytes = 16384
HeartbeatSeconds = ${heartbeatSeconds}
RateLimitPerSecond = 1000000
RateLimitBurst = 1000000
RateLimitStrikes = 1000000
HandshakeTimeoutSeconds = 10
IdleTimeoutSeconds = 300
MaxPendingConnections = 100000
MaxBufferedBytes = 268435456
EventBatchMs = ${claims.eventBatchMs ?? 50}
SignatureChecksPerSecond = 1000000
JsonContainersPerSecond = 1000000000

[Store]
Database = ${claims.database ?? join(dir, 'registry.db')}
${claims.leaseSeconds === undefined ? '' : `LeaseSeconds = ${claims.leaseSeconds}\n`}
[Claims]
ClaimAfterSeconds = ${claims.claimAfterSeconds ?? 600}

[Log]
level = warn
`;
  const path = join(dir, 'config.ini');
  writeFileSync(path, ini);
  return path;
}

/**
 * GET /healthz on a bench server's operator socket: { status, body } (body parsed, or null); null when it does not
 * answer.
 */
export function healthz(operatorSocket) {
  return new Promise((resolveHealth) => {
    const req = httpGet({ socketPath: operatorSocket, path: '/healthz', timeout: 2_000 }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => {
        try {
          resolveHealth({ status: res.statusCode, body: JSON.parse(body) });
        } catch {
          resolveHealth({ status: res.statusCode, body: null });
        }
      });
    });
    req.on('error', () => resolveHealth(null));
    req.on('timeout', () => req.destroy());
  });
}

/** The image's node flags: server/Dockerfile's NODE_OPTIONS and its ENTRYPOINT's node flags. */
export const IMAGE_NODE_FLAGS = (() => {
  const dockerfile = readFileSync(join(ROOT, 'server/Dockerfile'), 'utf8');
  const options = /^ENV NODE_OPTIONS="([^"]+)"$/m.exec(dockerfile)?.[1];
  if (options === undefined) throw new Error('server/Dockerfile has no ENV NODE_OPTIONS="…" line');
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1];
  if (entrypoint === undefined) throw new Error('server/Dockerfile has no ENTRYPOINT [...] line');
  return [...options.split(/\s+/), ...JSON.parse(entrypoint).filter((arg) => arg.startsWith('--'))];
})();

/**
 * Starts the built registry (production mode) pinned to `run.cpu` and waits for /healthz (on its
 * operator socket) to answer 200. `run`: { tempRoot, server (cli.js), cpu, nofile, lifetimeSeconds }. `claims`: see
 * serverConfig, and `script`, an entry script run instead of the CLI with the same `--config`
 * (bench/phases/claims-server.mjs).
 */
export async function launchRegistry(run, label, heartbeatSeconds, profileName = null, claims = {}) {
  const dir = join(run.tempRoot, label);
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const configPath = serverConfig(dir, port, heartbeatSeconds, claims);
  // The image's V8 flags (server/Dockerfile NODE_OPTIONS): the bench measures what ships.
  const nodeArgs = [...IMAGE_NODE_FLAGS];
  if (profileName !== null) {
    const profiles = join(ROOT, 'bench/profiles');
    mkdirSync(profiles, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${profiles}`, `--cpu-prof-name=${profileName}`);
  }
  const child = spawnNode({
    script: claims.script ?? run.server,
    args: claims.script === undefined ? ['serve', '--config', configPath] : ['--config', configPath],
    nodeArgs,
    env: { NODE_ENV: 'production', NO_PRETTY: '1' },
    cpu: run.cpu,
    nofile: run.nofile,
    lifetimeSeconds: run.lifetimeSeconds,
    name: `registry-${label}`,
  });
  const pid = await child.pid;
  const operatorSocket = operatorSocketIn(dir);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const health = await healthz(operatorSocket);
    if (health?.status === 200) break;
    if (child.proc.exitCode !== null || Date.now() > deadline) {
      throw new Error(
        `registry on port ${port} did not become healthy (its operator socket ${operatorSocket}): ` +
          `${child.lines.slice(-10).join('\n')}`,
      );
    }
    await sleep(50);
  }
  return { child, pid, port, operatorSocket, fdLimit: openFilesLimit(pid) };
}

export function serverWarnings(child) {
  return child.lines.filter(
    (line) => line.includes('"level":40') || line.includes('"level":50') || line.includes('"level":60'),
  );
}

export const lookupNames = (count) => Array.from({ length: count }, (_, i) => `lk-${String(i).padStart(5, '0')}`);
export const lookupPayloads = (count) =>
  lookupNames(count).map((nickname) => JSON.stringify({ type: 'lookup', id: 1, nickname }));
export const OK_LOOKUP = '{"type":"peer",';

/** One real lookup, to record the reply size the echo baseline imitates. */
export async function lookupReplyBytes(port, nickname) {
  const conn = await WireConnection.open({ port });
  try {
    await conn.next();
    conn.send(clientFrame(JSON.stringify({ type: 'lookup', id: 1, nickname })));
    return Buffer.byteLength(await conn.next(), 'utf8');
  } finally {
    conn.destroy();
  }
}

/** Which server code was measured: the commit, and whether server/src had uncommitted changes. */
export function serverProvenance(server) {
  if (server !== BUILT_CLI) return { cli: server, note: "not this checkout's build" };
  try {
    const git = (args) =>
      execFileSync('git', args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .trim();
    return {
      cli: 'server/dist/cli.js',
      commit: git(['rev-parse', 'HEAD']),
      serverSrcDirty: git(['status', '--porcelain', '--', 'server/src']) !== '',
    };
  } catch {
    return { cli: 'server/dist/cli.js', commit: null };
  }
}

export function machineInfo() {
  const wsVersion = JSON.parse(readFileSync(join(ROOT, 'node_modules/ws/package.json'), 'utf8')).version;
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryMb: Math.round(totalmem() / 2 ** 20),
    node: process.version,
    ws: wsVersion,
    pinned: CAN_PIN,
    loadAvgAtStart: loadavg().map((x) => Number(x.toFixed(2))),
  };
}

/** The table every bench prints: [metric, value, target, note] rows. */
export function formatTable(rows) {
  const pad = (value, n) => String(value ?? 'n/a').padEnd(n);
  const lines = [`${pad('metric', 26)} ${pad('value', 9)} ${pad('target', 9)} note`, '-'.repeat(100)];
  for (const [name, value, target, note] of rows)
    lines.push(`${pad(name, 26)} ${pad(value, 9)} ${pad(target, 9)} ${note}`);
  return `\n${lines.join('\n')}\n\n`;
}
