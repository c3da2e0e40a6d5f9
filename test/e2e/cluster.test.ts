/**
 * End-to-end: the cluster (compose.cluster.yaml: PostgreSQL, the Onionbalance frontend, two
 * backends of tor + registry) on a private Tor network (test/compose.cluster-testnet.yaml), started
 * with testcontainers. Clients reach the registry through the client tor's SOCKS port: through the
 * frontend's master onion, or a backend's own onion where a test needs to pick the backend. No tor
 * here ever contacts the public Tor network: all of them use only the test network's authorities.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { DockerComposeEnvironment, Wait, type StartedDockerComposeEnvironment } from 'testcontainers';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createIdentity, type PeerIdentity } from '../../server/src/client/identity.js';
import { RegistryClient } from '../../server/src/client/index.js';
import type { SocksProxy } from '../../server/src/client/socks5.js';
import { randomNickname, randomOnion } from '../support/registry-harness.js';
import { retry, waitForValue, waitUntil } from '../support/wait.js';

const ROOT = resolve(import.meta.dirname, '../..');
const PREFIX = 'p2p-registry-cluster-e2e-';
const PROJECT = `${PREFIX}${randomBytes(3).toString('hex')}`;
const FILES = ['compose.cluster.yaml', 'test/compose.cluster-testnet.yaml'];
const BACKENDS = ['backend1', 'backend2'] as const;
type Backend = (typeof BACKENDS)[number];
const HS_DIR = '/var/lib/tor/hidden_service';
const exec = promisify(execFile);

let stack: StartedDockerComposeEnvironment | undefined;
let socks: SocksProxy;
let master: string;
const backendOnion = {} as Record<Backend, string>;
const clients: RegistryClient[] = [];
const timings: Record<string, number | number[]> = {};

function compose(...args: string[]): Promise<{ stdout: string }> {
  const files = FILES.flatMap((file) => ['-f', file]);
  return exec('docker', ['compose', '-p', PROJECT, ...files, '--profile', 'all', ...args], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
}

async function inContainer(service: string, command: string[]): Promise<{ output: string; exitCode: number }> {
  const result = await (stack as StartedDockerComposeEnvironment).getContainer(`${service}-1`).exec(command);
  return { output: result.output.trim(), exitCode: result.exitCode };
}

/**
 * Gives the client tor a fresh onion-service client state: SIGNAL NEWNYM drops its cached
 * descriptors, its introduction-point failures and the HSDir requests it remembers, as for a
 * peer's tor that never saw this cluster. Without it, the one client tor of this test holds, after
 * the first backend's restart, a master descriptor whose introduction points all die with the
 * second backend, and on this network of 6 HSDirs it then fetched no fresh one within 180 s
 * (CI, 2026-12-01: tor asks each HSDir for a descriptor at most once in 15 minutes). README's
 * rolling-upgrade bullet says what this means for peers.
 */
async function freshClientTor(): Promise<void> {
  const { output, exitCode } = await inContainer('testnet-client', ['bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/9051 && printf "AUTHENTICATE\r\nSIGNAL NEWNYM\r\nQUIT\r\n" >&3 && cat <&3']);
  expect(exitCode, output).toBe(0);
  expect(output).toMatch(/^250 OK\r?\n250 OK\r?\n/);
}

async function sql(query: string): Promise<string[]> {
  const { output, exitCode } = await inContainer('postgres', ['psql', '-X', '-A', '-t', '-q', '-U', 'registry', '-d', 'registry', '-c', query]);
  expect(exitCode, output).toBe(0);
  return output === '' ? [] : output.split('\n');
}

async function health(service: string): Promise<string> {
  const id = (stack as StartedDockerComposeEnvironment).getContainer(`${service}-1`).getId();
  return (await exec('docker', ['inspect', '-f', '{{.State.Health.Status}}', id])).stdout.trim();
}

async function waitHealthy(services: readonly string[], timeoutMs: number): Promise<void> {
  const status: Record<string, string> = {};
  await waitUntil(
    `${services.join(', ')} to be healthy`,
    async () => {
      for (const service of services) status[service] = await health(service).catch((err: Error) => err.message);
      return services.every((service) => status[service] === 'healthy');
    },
    { timeoutMs, intervalMs: 1000, describe: () => JSON.stringify(status) },
  );
}

function urlOf(onion: string): string {
  return `ws://${onion}:80/`;
}

/** A client through tor; retried while descriptors spread (retry: false for a single attempt). */
/**
 * The clients share the client tor's circuits: its own SOCKS credentials per client (isolated
 * circuits, see stack.test.ts) were tried for the fresh clients below, and made each of them try
 * the stopped backend's introduction points itself (one took 18 s), and two of the three runs with
 * them failed later (the probe during the second restart; a direct connection to a restarted
 * backend), each on a client tor whose cached descriptor listed only dead introduction points and
 * that got no fresh one within 120 s. Whether the isolated attempts caused that is not known.
 */
async function connectClient(onion: string, options: { identity?: PeerIdentity; timeoutMs?: number; attemptMs?: number; retry?: boolean } = {}): Promise<RegistryClient> {
  const attempt = (): Promise<RegistryClient> =>
    RegistryClient.connect({
      url: urlOf(onion),
      socks,
      ...(options.identity === undefined ? {} : { identity: options.identity }),
      connectTimeoutMs: options.attemptMs ?? 30_000,
      reconnect: { initialDelayMs: 500, maxDelayMs: 5_000, maxAttempts: 200 },
    });
  const client = options.retry === false ? await attempt() : await retry('a connection through tor', attempt, { timeoutMs: options.timeoutMs ?? 120_000, intervalMs: 1000 });
  clients.push(client);
  return client;
}

/** Interrupted earlier runs of this suite leave projects named PREFIX*: remove them. */
async function removeLeftovers(): Promise<void> {
  const { stdout } = await exec('docker', ['compose', 'ls', '--all', '--format', 'json']);
  const projects = (JSON.parse(stdout || '[]') as Array<{ Name: string }>).map((p) => p.Name);
  for (const name of projects.filter((n) => n.startsWith(PREFIX))) {
    console.warn(`removing the leftovers of an earlier cluster e2e run: ${name}`);
    await exec('docker', ['compose', '-p', name, ...FILES.flatMap((f) => ['-f', f]), '--profile', 'all', 'down', '-v', '--remove-orphans', '-t', '2'], { cwd: ROOT });
  }
}

async function startStack(): Promise<StartedDockerComposeEnvironment> {
  const environment: Record<string, string> = {};
  for (const name of ['TOR_BASE_IMAGE', 'NODE_BASE_IMAGE', 'POSTGRES_IMAGE']) {
    const value = process.env[name];
    if (value !== undefined && value !== '') environment[name] = value;
  }
  let env = new DockerComposeEnvironment(ROOT, FILES)
    .withProjectName(PROJECT)
    .withProfiles('all')
    .withBuild()
    .withEnvironment(environment)
    .withStartupTimeout(300_000)
    .withWaitStrategy('testnet-init-1', Wait.forOneShotStartup())
    .withWaitStrategy('postgres-1', Wait.forHealthCheck())
    .withWaitStrategy('testnet-client-1', Wait.forHealthCheck())
    .withWaitStrategy('frontend-1', Wait.forHealthCheck());
  for (const backend of BACKENDS) {
    env = env
      .withWaitStrategy(`${backend}-config-1`, Wait.forOneShotStartup())
      .withWaitStrategy(`${backend}-join-1`, Wait.forOneShotStartup())
      .withWaitStrategy(`${backend}-tor-1`, Wait.forHealthCheck())
      .withWaitStrategy(`${backend}-registry-1`, Wait.forHealthCheck());
  }
  stack = await env.up();
  socks = { host: '127.0.0.1', port: stack.getContainer('testnet-client-1').getMappedPort(9050) };
  return stack;
}

interface InstanceStatus {
  readonly onionAddress: string;
  readonly introSetModified?: string;
}
interface FrontendStatus {
  readonly services: Array<{ publishAttemptFirstDescriptor: string | null; publishAttemptSecondDescriptor: string | null; instances: InstanceStatus[] }>;
}

/** onionbalance's times are UTC without a zone. */
function utc(time: string | null | undefined): number {
  return time === null || time === undefined ? Number.NaN : Date.parse(`${time.replace(' ', 'T')}Z`);
}

/**
 * After a backend's restart its tor has new introduction points: wait until onionbalance has seen
 * them (introSetModified after `since`) and published the master descriptor after that. Only then
 * may the next backend go down (README, Cluster: rolling restart).
 */
async function waitRepublished(backend: Backend, since: number, timeoutMs: number): Promise<void> {
  let last = '(no status yet)';
  await waitUntil(
    `the frontend to publish ${backend}'s new introduction points`,
    async () => {
      const { output, exitCode } = await inContainer('frontend', ['/usr/local/bin/cluster', 'status']);
      last = output;
      if (exitCode !== 0) return false;
      const service = (JSON.parse(output) as FrontendStatus).services[0];
      const instance = service?.instances.find((i) => i.onionAddress === backendOnion[backend]);
      const modified = utc(instance?.introSetModified);
      // Whole seconds in the status: compare with the restart's second.
      return modified >= Math.floor(since / 1000) * 1000 && utc(service?.publishAttemptFirstDescriptor) >= modified && utc(service?.publishAttemptSecondDescriptor) >= modified;
    },
    { timeoutMs, intervalMs: 1000, describe: () => `status: ${last}` },
  );
}

beforeAll(async () => {
  const started = Date.now();
  await removeLeftovers();
  await startStack();
  timings.clusterHealthySeconds = (Date.now() - started) / 1000;
  master = (await sql('SELECT master_onion FROM registry_frontend'))[0] ?? '(no row in registry_frontend)';
  for (const backend of BACKENDS) backendOnion[backend] = (await inContainer(`${backend}-tor`, ['cat', `${HS_DIR}/hostname`])).output;
  const healthyAt = Date.now();
  const first = await connectClient(master);
  timings.firstHelloAfterHealthySeconds = (Date.now() - healthyAt) / 1000;
  await first.close();
}, 900_000);

afterEach(async (context) => {
  if (context.task.result?.state === 'fail' && stack !== undefined) {
    const { stdout } = await compose('logs', '--no-color', '--tail', '40', 'frontend', 'backend1-registry', 'backend2-registry', 'backend1-tor', 'backend2-tor').catch(() => ({ stdout: '(no logs)' }));
    console.error(`--- container logs (${PROJECT}) ---\n${stdout}`);
  }
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  console.log(`cluster e2e timings: ${JSON.stringify(timings)}`);
  if (stack !== undefined) await stack.down({ removeVolumes: true, timeout: 10_000 });
  else await compose('down', '-v', '--remove-orphans').catch(() => undefined);
}, 120_000);

describe('the cluster through Onionbalance', () => {
  it('discovers the backends without an operator: each registry adds its onion, the frontend serves them', async () => {
    expect(master).toMatch(/^[a-z2-7]{56}\.onion$/);
    expect(await sql("SELECT onion FROM registry_backends WHERE last_seen > now() - interval '1 minute' ORDER BY onion")).toEqual(
      BACKENDS.map((b) => backendOnion[b]).sort(),
    );
    const frontendHealth = await inContainer('frontend', ['/usr/local/bin/cluster', 'health']);
    expect(frontendHealth.output).toMatch(new RegExp(`^healthy: serving ${master.replace('.', '\\.')} with 2 of 2 backend\\(s\\)`));
    for (const backend of BACKENDS) {
      const obConfig = await inContainer(`${backend}-tor`, ['cat', `${HS_DIR}/ob_config`]);
      expect(obConfig.output).toBe(`MasterOnionAddress ${master}`);
    }
  });

  it('lets a client reach the registry at the frontend onion', async () => {
    const client = await connectClient(master, { identity: createIdentity() });
    expect(client.hello).not.toBeNull();
    await client.register({ nickname: randomNickname('front'), address: randomOnion(), port: 5050 });
    await client.close();
  });

  it('shows peers registered on different backends to each other: lookup, list and events', async () => {
    const watcher = await connectClient(backendOnion.backend2);
    await watcher.subscribe();
    const seen: string[] = [];
    watcher.on('peer_joined', (peer) => seen.push(`+${peer.nickname}`));
    watcher.on('peer_left', (nickname) => seen.push(`-${nickname}`));
    const alice = await connectClient(backendOnion.backend1, { identity: createIdentity() });
    const bob = await connectClient(backendOnion.backend2, { identity: createIdentity() });
    const aliceName = randomNickname('alice');
    const bobName = randomNickname('bob');
    const registeredAt = Date.now();
    await alice.register({ nickname: aliceName, address: randomOnion(), port: 5050 });
    await bob.register({ nickname: bobName, address: randomOnion(), port: 5051 });
    await waitUntil(`peer_joined for ${aliceName} on backend2`, () => seen.includes(`+${aliceName}`), { timeoutMs: 15_000, intervalMs: 50, describe: () => seen.join(' ') });
    timings.crossBackendEventSeconds = (Date.now() - registeredAt) / 1000;
    expect(await bob.lookup(aliceName)).toMatchObject({ nickname: aliceName, port: 5050 });
    await waitForValue(`${bobName} on backend1`, () => alice.lookup(bobName).catch(() => undefined), { timeoutMs: 10_000, intervalMs: 200 });
    for (const client of [alice, bob]) expect((await client.list()).map((p) => p.nickname)).toEqual(expect.arrayContaining([aliceName, bobName]));
    await alice.close();
    await waitUntil(`peer_left for ${aliceName} on backend2`, () => seen.includes(`-${aliceName}`), { timeoutMs: 30_000, intervalMs: 100, describe: () => seen.join(' ') });
    await expect(bob.lookup(aliceName)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('lets fresh clients reach the frontend right after a backend stopped', async () => {
    await compose('stop', '-t', '5', 'backend1-tor', 'backend1-registry');
    try {
      // A client may meet the stopped backend first: a stream on a rendezvous circuit to it fails at
      // once (SOCKS general failure, seen once in CI) and a retry goes through the other one, as a
      // real client's would. Most are in within 0.3 s; on this 2-core test network tor's fallback
      // has taken 10 s, 18 s, and once more than one 30 s attempt (CI, 2026-12-01). What must hold:
      // each fresh client is in within 60 s, attempts of 20 s (tor goes on building the circuits
      // in between: a new stream uses them), with at most 3 failed attempts over the five.
      const latencies: number[] = [];
      let failedAttempts = 0;
      for (let i = 0; i < 5; i += 1) {
        const started = Date.now();
        const client = await retry('a fresh client through the frontend', () => connectClient(master, { identity: createIdentity(), retry: false, attemptMs: 20_000 }).catch((err: unknown) => {
          failedAttempts += 1;
          throw err;
        }), { timeoutMs: 60_000, intervalMs: 500 });
        latencies.push((Date.now() - started) / 1000);
        await client.register({ nickname: randomNickname('fresh'), address: randomOnion(), port: 5050 });
        await client.close();
      }
      timings.connectWithOneBackendDownSeconds = latencies;
      timings.failedAttemptsWithOneBackendDown = failedAttempts;
      expect(latencies.every((s) => s < 60)).toBe(true);
      expect(failedAttempts).toBeLessThanOrEqual(3);
    } finally {
      await compose('start', 'backend1-tor', 'backend1-registry');
    }
    const restarted = Date.now();
    await waitHealthy(['backend1-tor', 'backend1-registry'], 120_000);
    await waitRepublished('backend1', restarted - 5_000, 120_000);
    timings.backendBackInFrontendSeconds = (Date.now() - restarted) / 1000;
  });

  it('keeps every peer\'s nickname over a rolling restart of both backends', async () => {
    const peers = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const identity = createIdentity();
        const client = await connectClient(master, { identity });
        const nickname = randomNickname(`roll${i}`);
        await client.register({ nickname, address: randomOnion(), port: 5050 + i });
        await waitForValue(`the claim of ${nickname}`, () => client.claim ?? undefined, { timeoutMs: 30_000, intervalMs: 100 });
        return { client, nickname, identity, reconnects: 0 };
      }),
    );
    for (const peer of peers) peer.client.on('reconnected', () => { peer.reconnects += 1; });
    const rollStarted = Date.now();
    for (const backend of BACKENDS) {
      const started = Date.now();
      await compose('restart', '-t', '5', `${backend}-registry`, `${backend}-tor`);
      // Reachable at the frontend while this backend restarts and the other one serves. During the
      // second restart the client tor's cached master descriptor may list only dead introduction
      // points (the first backend's old ones, this one's): tor tries them, then fetches the
      // descriptor again, all within one stream if it is given the time (CI saw 21 s and 53 s, and
      // once four 30 s attempts that each gave up too early). So one attempt may take 90 s, as a
      // patient client's would (tor's own SocksTimeout is 120 s), and 180 s in all.
      const probeStarted = Date.now();
      const probe = await connectClient(master, { timeoutMs: 180_000, attemptMs: 90_000 });
      timings[`probeDuring${backend}RestartSeconds`] = (Date.now() - probeStarted) / 1000;
      await probe.close();
      await waitHealthy([`${backend}-tor`, `${backend}-registry`], 120_000);
      await waitRepublished(backend, started, 120_000);
      timings[`${backend}RestartSeconds`] = (Date.now() - started) / 1000;
      await freshClientTor();
    }
    timings.rollingRestartSeconds = (Date.now() - rollStarted) / 1000;
    expect(peers.reduce((n, p) => n + p.reconnects, 0)).toBeGreaterThanOrEqual(peers.length);
    for (const peer of peers) {
      const back = await waitForValue(`${peer.nickname} registered again`, () => (peer.client.state === 'open' ? peer.client.registration ?? undefined : undefined), { timeoutMs: 120_000, intervalMs: 200 });
      expect(back).toMatchObject({ nickname: peer.nickname });
      const other = await connectClient(master, { identity: createIdentity() });
      expect(await other.lookup(peer.nickname)).toMatchObject({ nickname: peer.nickname });
      await expect(other.register({ nickname: peer.nickname, address: randomOnion(), port: 5050 })).rejects.toMatchObject({ code: 'NICKNAME_TAKEN' });
      await other.close();
    }
    // Offline now, each claim holds on every backend: it is in the shared database, not in one server.
    for (const peer of peers) await peer.client.close();
    for (const backend of BACKENDS) {
      const other = await connectClient(backendOnion[backend], { identity: createIdentity() });
      for (const peer of peers) {
        await expect(other.register({ nickname: peer.nickname, address: randomOnion(), port: 5050 }), `${peer.nickname} on ${backend}`).rejects.toMatchObject({ code: 'NICKNAME_TAKEN' });
      }
      await other.close();
    }
  }, 900_000);
});

