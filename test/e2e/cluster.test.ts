/**
 * End-to-end: the cluster (compose.cluster.yaml: PostgreSQL, the Onionbalance frontend, two
 * backends of tor + registry) on a private Tor network (test/compose.cluster-testnet.yaml), started
 * with testcontainers, and operated as docs/CLUSTER.md says (tor/cluster-ops.sh: upgrade, drain, undrain).
 * Clients reach the registry through the client tor's SOCKS port: through the frontend's master
 * onion, or a backend's own onion where a test needs to pick the backend. Each client stands for
 * a peer of its own and gives tor SOCKS credentials of its own, so no two share circuits; they
 * share the client tor's descriptor cache, as the apps of one machine would. Where a test needs a
 * peer that never saw the cluster before, it gives the client tor a fresh onion-service state
 * (NEWNYM). No tor here ever contacts the public Tor network: all of them use only the test
 * network's authorities.
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
import { upWithDiagnostics } from './compose-diagnostics.js';
import { dashboardQueries, expectEveryQueryAnswers, promQuery } from './prometheus.js';

const ROOT = resolve(import.meta.dirname, '../..');
const PREFIX = 'p2p-registry-cluster-e2e-';
const PROJECT = `${PREFIX}${randomBytes(3).toString('hex')}`;
const FILES = ['compose.cluster.yaml', 'test/compose.cluster-testnet.yaml'];
const BACKENDS = ['backend1', 'backend2'] as const;
type Backend = (typeof BACKENDS)[number];
const HS_DIR = '/var/lib/tor/hidden_service';
const exec = promisify(execFile);

let stack: StartedDockerComposeEnvironment | undefined;
/** The monitoring profile's Prometheus, published on a random port of 127.0.0.1. */
let prometheusUrl: string;
let socks: SocksProxy;
let master: string;
const backendOnion = {} as Record<Backend, string>;
const clients: RegistryClient[] = [];
const timings: Record<string, number | number[]> = {};

function compose(...args: string[]): Promise<{ stdout: string }> {
  const files = FILES.flatMap((file) => ['-f', file]);
  return exec('docker', ['compose', '-p', PROJECT, ...files, '--profile', 'all', '--profile', 'monitoring', ...args], {
    cwd: ROOT,
    maxBuffer: 16 * 1024 * 1024,
  });
}

async function inContainer(service: string, command: string[]): Promise<{ output: string; exitCode: number }> {
  const result = await (stack as StartedDockerComposeEnvironment).getContainer(`${service}-1`).exec(command);
  return { output: result.output.trim(), exitCode: result.exitCode };
}

/**
 * Gives the client tor a fresh onion-service client state: SIGNAL NEWNYM drops its cached
 * descriptors, its introduction-point failures and the HSDir requests it remembers, as for a
 * peer's tor that never saw this cluster (tor asks each HSDir for one descriptor at most once in
 * 15 minutes, and this one tor serves every client of the file).
 */
async function freshClientTor(): Promise<void> {
  const { output, exitCode } = await inContainer('testnet-client', [
    'bash',
    '-c',
    'exec 3<>/dev/tcp/127.0.0.1/9051 && printf "AUTHENTICATE\r\nSIGNAL NEWNYM\r\nQUIT\r\n" >&3 && cat <&3',
  ]);
  expect(exitCode, output).toBe(0);
  expect(output).toMatch(/^250 OK\r?\n250 OK\r?\n/);
}

async function sql(query: string): Promise<string[]> {
  const { output, exitCode } = await inContainer('postgres', [
    'psql',
    '-X',
    '-A',
    '-t',
    '-q',
    '-U',
    'registry',
    '-d',
    'registry',
    '-c',
    query,
  ]);
  expect(exitCode, output).toBe(0);
  return output === '' ? [] : output.split('\n');
}

/** A service's container by name: an upgrade replaces a registry's container (a new id). */
function containerName(service: string): string {
  return `${PROJECT}-${service}-1`;
}

async function health(service: string): Promise<string> {
  return (await exec('docker', ['inspect', '-f', '{{.State.Health.Status}}', containerName(service)])).stdout.trim();
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

/** SOCKS credentials of a peer's own: tor gives them circuits of their own (IsolateSOCKSAuth). */
function ownCircuits(): SocksProxy {
  return { ...socks, username: `peer-${randomBytes(6).toString('hex')}`, password: 'e2e' };
}

/**
 * A client of a peer of its own through tor. `retry` (default) retries while descriptors spread
 * after the stack started; `retry: false` is one attempt.
 */
async function connectClient(
  onion: string,
  options: { identity?: PeerIdentity; timeoutMs?: number; attemptMs?: number; retry?: boolean } = {},
): Promise<RegistryClient> {
  const proxy = ownCircuits();
  const attempt = (): Promise<RegistryClient> =>
    RegistryClient.connect({
      url: urlOf(onion),
      socks: proxy,
      ...(options.identity === undefined ? {} : { identity: options.identity }),
      connectTimeoutMs: options.attemptMs ?? 30_000,
      reconnect: { initialDelayMs: 500, maxDelayMs: 5_000, maxAttempts: 200 },
    });
  const client =
    options.retry === false
      ? await attempt()
      : await retry('a connection through tor', attempt, { timeoutMs: options.timeoutMs ?? 120_000, intervalMs: 1000 });
  clients.push(client);
  return client;
}

/** Interrupted earlier runs of this suite leave projects named PREFIX*: remove them. */
async function removeLeftovers(): Promise<void> {
  const { stdout } = await exec('docker', ['compose', 'ls', '--all', '--format', 'json']);
  const projects = (JSON.parse(stdout || '[]') as Array<{ Name: string }>).map((p) => p.Name);
  for (const name of projects.filter((n) => n.startsWith(PREFIX))) {
    console.warn(`removing the leftovers of an earlier cluster e2e run: ${name}`);
    await exec(
      'docker',
      [
        'compose',
        '-p',
        name,
        ...FILES.flatMap((f) => ['-f', f]),
        '--profile',
        'all',
        '--profile',
        'monitoring',
        'down',
        '-v',
        '--remove-orphans',
        '-t',
        '2',
      ],
      { cwd: ROOT },
    );
  }
}

async function startStack(): Promise<StartedDockerComposeEnvironment> {
  const environment: Record<string, string> = {};
  for (const name of ['TOR_BASE_IMAGE', 'NODE_BASE_IMAGE', 'POSTGRES_IMAGE', 'PROMETHEUS_IMAGE']) {
    const value = process.env[name];
    if (value !== undefined && value !== '') environment[name] = value;
  }
  environment.PROMETHEUS_PUBLISH = '127.0.0.1:'; // a random port of the loopback
  let env = new DockerComposeEnvironment(ROOT, FILES)
    .withProjectName(PROJECT)
    .withProfiles('all', 'monitoring')
    .withBuild()
    .withEnvironment(environment)
    .withStartupTimeout(300_000)
    .withWaitStrategy('testnet-init-1', Wait.forOneShotStartup())
    .withWaitStrategy('postgres-1', Wait.forHealthCheck())
    .withWaitStrategy('testnet-client-1', Wait.forHealthCheck())
    .withWaitStrategy('frontend-1', Wait.forHealthCheck())
    .withWaitStrategy('prometheus-1', Wait.forHealthCheck());
  for (const backend of BACKENDS) {
    env = env
      .withWaitStrategy(`${backend}-config-1`, Wait.forOneShotStartup())
      .withWaitStrategy(`${backend}-join-1`, Wait.forOneShotStartup())
      .withWaitStrategy(`${backend}-tor-1`, Wait.forHealthCheck())
      .withWaitStrategy(`${backend}-registry-1`, Wait.forHealthCheck());
  }
  stack = await upWithDiagnostics(env, PROJECT);
  socks = { host: '127.0.0.1', port: stack.getContainer('testnet-client-1').getMappedPort(9050) };
  prometheusUrl = `http://127.0.0.1:${stack.getContainer('prometheus-1').getMappedPort(9090)}`;
  return stack;
}

interface InstanceStatus {
  readonly onionAddress: string;
  readonly introSetModified?: string;
}
interface FrontendStatus {
  readonly services: Array<{
    publishAttemptFirstDescriptor: string | null;
    publishAttemptSecondDescriptor: string | null;
    instances: InstanceStatus[];
  }>;
}

/** onionbalance's times are UTC without a zone, in whole seconds. */
function utc(time: string | null | undefined): number {
  return time === null || time === undefined ? Number.NaN : Date.parse(`${time.replace(' ', 'T')}Z`);
}

async function frontendStatus(): Promise<FrontendStatus['services'][number] | undefined> {
  const { output, exitCode } = await inContainer('frontend', ['/usr/local/bin/cluster', 'status']);
  return exitCode === 0 ? (JSON.parse(output) as FrontendStatus).services[0] : undefined;
}

/**
 * Waits until the frontend published both master descriptors after `since` with exactly
 * `backends`, each with introduction points it learned after `introSince` (a restarted tor's);
 * resolves with the time of that publication.
 */
async function waitPublished(
  backends: readonly Backend[],
  since: number,
  timeoutMs: number,
  introSince = 0,
): Promise<number> {
  let last = '(no status yet)';
  const want = backends.map((b) => backendOnion[b]).sort();
  return waitForValue(
    `the frontend to publish with ${backends.join(', ') || 'no backend'}`,
    async () => {
      const service = await frontendStatus();
      last = JSON.stringify(service);
      if (service === undefined) return undefined;
      const onions = service.instances.map((i) => i.onionAddress).sort();
      const published = Math.min(
        utc(service.publishAttemptFirstDescriptor),
        utc(service.publishAttemptSecondDescriptor),
      );
      const fresh = service.instances.every((i) => utc(i.introSetModified) >= Math.floor(introSince / 1000) * 1000);
      return JSON.stringify(onions) === JSON.stringify(want) && fresh && published >= Math.floor(since / 1000) * 1000
        ? published
        : undefined;
    },
    { timeoutMs, intervalMs: 1000, describe: () => `status: ${last}` },
  );
}

/** tor/cluster-ops.sh, as make cluster-upgrade / cluster-drain / cluster-undrain run it, on this test's stack. */
async function clusterOps(...args: string[]): Promise<string> {
  const files = FILES.map((f) => `-f ${f}`).join(' ');
  const COMPOSE = `docker compose -p ${PROJECT} ${files} --profile all --profile monitoring`;
  const { stdout } = await exec('bash', ['tor/cluster-ops.sh', ...args], {
    cwd: ROOT,
    env: { ...process.env, COMPOSE },
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

async function startedAt(service: string): Promise<string> {
  return (await exec('docker', ['inspect', '-f', '{{.State.StartedAt}}', containerName(service)])).stdout.trim();
}

/** A peer of its own, registered through the master onion, holding its claim. */
async function registeredPeer(
  tag: string,
): Promise<{ client: RegistryClient; nickname: string; reconnects: number; backAt: number[] }> {
  const client = await connectClient(master, { identity: createIdentity() });
  const nickname = randomNickname(tag);
  await client.register({ nickname, address: randomOnion(), port: 5050 });
  await waitForValue(`the claim of ${nickname}`, () => client.claim ?? undefined, {
    timeoutMs: 30_000,
    intervalMs: 100,
  });
  const peer = { client, nickname, reconnects: 0, backAt: [] as number[] };
  client.on('reconnected', () => {
    peer.reconnects += 1;
    peer.backAt.push(Date.now());
  });
  return peer;
}

/** Fresh peers through the frontend, one after another: each must be in with a single attempt of `attemptMs`. */
async function freshPeersGetIn(count: number, attemptMs: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const started = Date.now();
    const client = await connectClient(master, { identity: createIdentity(), retry: false, attemptMs });
    latencies.push((Date.now() - started) / 1000);
    await client.register({ nickname: randomNickname('fresh'), address: randomOnion(), port: 5050 });
    await client.close();
  }
  return latencies;
}

beforeAll(async () => {
  const started = Date.now();
  await removeLeftovers();
  await startStack();
  timings.clusterHealthySeconds = (Date.now() - started) / 1000;
  master = (await sql('SELECT master_onion FROM registry_frontend'))[0] ?? '(no row in registry_frontend)';
  for (const backend of BACKENDS)
    backendOnion[backend] = (await inContainer(`${backend}-tor`, ['cat', `${HS_DIR}/hostname`])).output;
  // The frontend is healthy once it published one backend; the second may join a little later.
  await waitPublished(BACKENDS, 0, 180_000);
  const healthyAt = Date.now();
  const first = await connectClient(master);
  timings.firstHelloAfterHealthySeconds = (Date.now() - healthyAt) / 1000;
  await first.close();
}, 900_000);

afterEach(async (context) => {
  if (context.task.result?.state === 'fail' && stack !== undefined) {
    const { stdout } = await compose(
      'logs',
      '--no-color',
      '--tail',
      '40',
      'frontend',
      'backend1-registry',
      'backend2-registry',
      'backend1-tor',
      'backend2-tor',
    ).catch(() => ({ stdout: '(no logs)' }));
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
  it(
    'discovers the backends without an operator: each registry announces its onion with its lease, the frontend ' +
      'serves them',
    async () => {
      expect(master).toMatch(/^[a-z2-7]{56}\.onion$/);
      expect(
        await sql(
          'SELECT onion FROM registry_backends WHERE lease_until > now() AND drained_at IS NULL ORDER BY onion',
        ),
      ).toEqual(BACKENDS.map((b) => backendOnion[b]).sort());
      const frontendHealth = await inContainer('frontend', ['/usr/local/bin/cluster', 'health']);
      expect(frontendHealth.output).toMatch(
        new RegExp(`^healthy: serving ${master.replace('.', '\\.')} with 2 of 2 backend\\(s\\)`),
      );
      const table = await clusterOps('backends');
      for (const backend of BACKENDS) {
        expect(table).toMatch(new RegExp(`^${backendOnion[backend].replace('.', '\\.')} +serving +yes `, 'm'));
        const obConfig = await inContainer(`${backend}-tor`, ['cat', `${HS_DIR}/ob_config`]);
        expect(obConfig.output).toBe(`MasterOnionAddress ${master}`);
      }
    },
  );

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
    await waitUntil(`peer_joined for ${aliceName} on backend2`, () => seen.includes(`+${aliceName}`), {
      timeoutMs: 15_000,
      intervalMs: 50,
      describe: () => seen.join(' '),
    });
    timings.crossBackendEventSeconds = (Date.now() - registeredAt) / 1000;
    expect(await bob.lookup(aliceName)).toMatchObject({ nickname: aliceName, port: 5050 });
    await waitForValue(`${bobName} on backend1`, () => alice.lookup(bobName).catch(() => undefined), {
      timeoutMs: 10_000,
      intervalMs: 200,
    });
    for (const client of [alice, bob])
      expect((await client.list()).map((p) => p.nickname)).toEqual(expect.arrayContaining([aliceName, bobName]));
    await alice.close();
    await waitUntil(`peer_left for ${aliceName} on backend2`, () => seen.includes(`-${aliceName}`), {
      timeoutMs: 30_000,
      intervalMs: 100,
      describe: () => seen.join(' '),
    });
    await expect(bob.lookup(aliceName)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await Promise.all([watcher.close(), bob.close()]);
  });

  it("gives Prometheus every backend's metrics: each registry and its tor, the cluster's series by backend, and the " +
    "dashboard's Cluster panels", async () => {
    const backends = async (expr: string): Promise<string[]> => {
      const answer = await promQuery(prometheusUrl, expr);
      expect(answer.status, expr).toBe('success');
      return answer.result.map((s) => s.metric.backend ?? '').sort();
    };
    const all = [...BACKENDS].sort();
    let seen: Record<string, string[]> = {};
    await waitUntil(
      "every backend's series in Prometheus",
      async () => {
        seen = {
          registry: await backends('up{job="registry"} == 1'),
          tor: await backends('up{job="tor"} == 1'),
          lease: await backends('registry_cluster_database_up == 1'),
          lag: await backends('registry_cluster_log_lag_events'),
          hs: await backends('sum by (backend) (tor_hs_intro_num_total)'),
        };
        return Object.values(seen).every((list) => JSON.stringify(list) === JSON.stringify(all));
      },
      { timeoutMs: 120_000, intervalMs: 3_000, describe: () => JSON.stringify(seen) },
    );
    // Each instance reports the whole cluster's table, and the peers registered through itself.
    await waitUntil(
      'registry_peers equal on every backend',
      async () => {
        const peers = await promQuery(prometheusUrl, 'registry_peers');
        return peers.result.length === BACKENDS.length && new Set(peers.result.map((s) => s.value[1])).size === 1;
      },
      { timeoutMs: 60_000, intervalMs: 3_000 },
    );
    await expectEveryQueryAnswers(
      prometheusUrl,
      dashboardQueries(true).filter((q) => q.panel.startsWith('Cluster:')),
      120_000,
    );
  }, 300_000);

  it(
    "upgrades every backend's registry without restarting a tor: its peers reconnect through the master onion and " +
      'keep their nicknames',
    async () => {
      const peers = await Promise.all([0, 1, 2, 3].map((i) => registeredPeer(`up${i}`)));
      const torsBefore = await Promise.all(BACKENDS.map((b) => startedAt(`${b}-tor`)));
      const started = Date.now();
      const said = await clusterOps('upgrade', '--no-build');
      const upgraded = Date.now();
      timings.upgradeSeconds = (upgraded - started) / 1000;
      for (const backend of BACKENDS) expect(said).toMatch(new RegExp(`${backend}: serving again after \\d+s`));
      // No tor restarted: every introduction point, and every peer's cached descriptor, stays valid.
      expect(await Promise.all(BACKENDS.map((b) => startedAt(`${b}-tor`)))).toEqual(torsBefore);
      // Each peer's registry was replaced once: it reconnected through the master onion by itself.
      for (const peer of peers) {
        const back = await waitForValue(
          `${peer.nickname} registered again`,
          () =>
            peer.client.state === 'open' && peer.reconnects > 0 ? (peer.client.registration ?? undefined) : undefined,
          {
            timeoutMs: 30_000,
            intervalMs: 100,
          },
        );
        expect(back).toMatchObject({ nickname: peer.nickname });
      }
      timings.upgradeReconnectsPerPeer = peers.map((p) => p.reconnects);
      const other = await connectClient(master, { identity: createIdentity(), retry: false, attemptMs: 30_000 });
      for (const peer of peers) {
        expect(await other.lookup(peer.nickname)).toMatchObject({ nickname: peer.nickname });
        await expect(
          other.register({ nickname: peer.nickname, address: randomOnion(), port: 5050 }),
        ).rejects.toMatchObject({ code: 'NICKNAME_TAKEN' });
      }
      await other.close();
      await Promise.all(peers.map((p) => p.client.close()));
    },
  );

  it(
    'drains a backend: the frontend publishes without it, then its tor stops and starts again and no fresh ' +
      'peer meets it',
    async () => {
      const drainStarted = Date.now();
      const said = await clusterOps('drain', 'backend1', '--reason', 'tor upgrade');
      timings.drainPublishedSeconds = (Date.now() - drainStarted) / 1000;
      expect(said).toMatch(
        new RegExp(
          `published without ${backendOnion.backend1.replace('.', '\\.')} at .*until \\d{4}-\\d\\d-\\d\\d ` +
            `\\d\\d:\\d\\d:\\d\\d UTC`,
        ),
      );
      expect(await clusterOps('backends')).toMatch(
        new RegExp(`^${backendOnion.backend1.replace('.', '\\.')} +drained +no .*\\(tor upgrade\\)$`, 'm'),
      );
      await waitPublished(['backend2'], drainStarted, 10_000);

      // Its tor and registry stop. A peer whose tor fetches the master descriptor now (a fresh client
      // tor state) finds only backend2's introduction points: each gets in at its first attempt.
      await compose('stop', '-t', '5', 'backend1-tor', 'backend1-registry');
      await freshClientTor();
      const latencies = await freshPeersGetIn(5, 20_000);
      timings.freshPeersWithDrainedBackendStoppedSeconds = latencies;

      // It comes back with new introduction points; undrained, the frontend publishes them.
      const restarted = Date.now();
      await compose('start', 'backend1-tor', 'backend1-registry');
      await waitHealthy(['backend1-tor', 'backend1-registry'], 120_000);
      const undrained = await clusterOps('undrain', 'backend1');
      expect(undrained).toMatch(/published with /);
      await waitPublished(BACKENDS, restarted, 120_000, restarted - 1_000);
      timings.undrainedBackInFrontendSeconds = (Date.now() - restarted) / 1000;
      const direct = await connectClient(backendOnion.backend1, { identity: createIdentity(), timeoutMs: 120_000 });
      await direct.close();
    },
  );

  it(
    'leaves a backend whose registry died out of the master descriptor once its lease lapsed, and serves it again ' +
      'when it is back',
    async () => {
      const killed = Date.now();
      await compose('kill', '-s', 'KILL', 'backend2-registry');
      // Its lease (15 s) and the frontend's grace (30 s), then a poll (5 s here) and a publication.
      const published = await waitPublished(['backend1'], killed, 120_000);
      timings.deadRegistryOutOfFrontendSeconds = (published - killed) / 1000;
      expect(await clusterOps('backends')).toMatch(
        new RegExp(`^${backendOnion.backend2.replace('.', '\\.')} +lapsed +no `, 'm'),
      );
      const back = Date.now();
      await compose('start', 'backend2-registry');
      await waitHealthy(['backend2-registry'], 60_000);
      await waitPublished(BACKENDS, back, 90_000);
      timings.registryBackInFrontendSeconds = (Date.now() - back) / 1000;
    },
  );

  it(
    'lets fresh peers in after a whole backend was killed, and leaves the backend out once its ' + 'lease lapsed',
    async () => {
      // The unplanned case: nobody drained it. Until the frontend drops it (its lease), the master
      // descriptor lists its dead introduction points; a peer's tor that picks one waits before it
      // tries another. Each peer, as its app would, tries again after a failed attempt.
      const killed = Date.now();
      await compose('kill', '-s', 'KILL', 'backend1-tor', 'backend1-registry');
      await freshClientTor();
      const latencies: number[] = [];
      let failedAttempts = 0;
      for (let i = 0; i < 5; i += 1) {
        const started = Date.now();
        const client = await retry(
          'a fresh peer through the frontend',
          () =>
            connectClient(master, { identity: createIdentity(), retry: false, attemptMs: 30_000 }).catch(
              (err: unknown) => {
                failedAttempts += 1;
                throw err;
              },
            ),
          { timeoutMs: 90_000, intervalMs: 500 },
        );
        latencies.push((Date.now() - started) / 1000);
        await client.close();
      }
      timings.freshPeersAfterKillSeconds = latencies;
      timings.freshPeersAfterKillFailedAttempts = failedAttempts;
      const published = await waitPublished(['backend2'], killed, 150_000);
      timings.killedBackendOutOfFrontendSeconds = (published - killed) / 1000;
      await freshClientTor();
      timings.freshPeersAfterKilledBackendLeftSeconds = await freshPeersGetIn(3, 20_000);
      await compose('start', 'backend1-tor', 'backend1-registry');
    },
  );
});
