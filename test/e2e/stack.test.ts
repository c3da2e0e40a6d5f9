/**
 * End-to-end: the shipped compose.yaml plus a private Tor network (test/compose.testnet.yaml),
 * started with testcontainers, with the monitoring profile (the metrics forwarder and Prometheus). Every request below
 * travels through the client tor's SOCKS port,
 * real onion routing, the stack's tor and its unix socket into the registry. No tor here ever
 * contacts the public Tor network: all of them use only the test network's own authorities.
 */
import { execFile } from 'node:child_process';
import { get as httpGet } from 'node:http';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { DockerComposeEnvironment, Wait, type StartedDockerComposeEnvironment } from 'testcontainers';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createIdentity, type PeerIdentity } from '../../server/src/client/identity.js';
import { RegistryClient, type ReconnectedInfo } from '../../server/src/client/index.js';
import { onionKeyFromBytes, type OnionKey } from '../../server/src/client/onion-key.js';
import { SocksAgent, socksConnect, type SocksProxy } from '../../server/src/client/socks5.js';
import {
  RawClient,
  ed25519Identity,
  randomNickname,
  randomOnion,
  signRegistration,
} from '../support/registry-harness.js';
import { nextEvent, retry, waitForValue, waitUntil } from '../support/wait.js';
import { upWithDiagnostics } from './compose-diagnostics.js';
import { dashboardQueries, expectEveryQueryAnswers, promQuery, promValue } from './prometheus.js';

const ROOT = resolve(import.meta.dirname, '../..');
const PROJECT = `p2p-registry-e2e-${randomBytes(3).toString('hex')}`;
const HS_DIR = '/var/lib/tor/hidden_service';
/** The test network's echo onion service keeps its key here, in the testnet-echo container. */
const ECHO_KEY = '/var/lib/tor-testnet/echo/hs/hs_ed25519_secret_key';
const REGISTRY_CONFIG = '/etc/p2p-registry/config.ini';
const exec = promisify(execFile);

let stack: StartedDockerComposeEnvironment | undefined;
let socks: SocksProxy;
let registryUrl: string;
let registryOnion: string;
let echoOnion: string;
/** The monitoring profile's Prometheus, published on a random port of 127.0.0.1. */
let prometheusUrl: string;
const clients: RegistryClient[] = [];
const timings: Record<string, number> = {};

function compose(...args: string[]): Promise<{ stdout: string }> {
  const files = ['-f', 'compose.yaml', '-f', 'test/compose.testnet.yaml', '--profile', 'monitoring'];
  return exec('docker', ['compose', '-p', PROJECT, ...files, ...args], {
    cwd: ROOT,
    maxBuffer: 16 * 1024 * 1024,
  });
}

async function inContainer(service: string, command: string[]): Promise<{ output: string; exitCode: number }> {
  const container = (stack as StartedDockerComposeEnvironment).getContainer(`${service}-1`);
  const result = await container.exec(command);
  return { output: result.output.trim(), exitCode: result.exitCode };
}

async function inspect(service: string, format: string): Promise<string> {
  const id = (stack as StartedDockerComposeEnvironment).getContainer(`${service}-1`).getId();
  return (await exec('docker', ['inspect', '-f', format, id])).stdout.trim();
}

async function waitHealthy(service: string, timeoutMs: number): Promise<void> {
  let status = '(not inspected yet)';
  await waitUntil(
    `${service} to be healthy`,
    async () => {
      status = await inspect(service, '{{.State.Health.Status}}');
      return status === 'healthy';
    },
    { timeoutMs, intervalMs: 1000, describe: () => `health status ${status}` },
  );
}

/** A client of the registry through tor; the first connection is retried while the descriptor spreads. */
async function connectClient(
  identity?: PeerIdentity,
  timeoutMs = 120_000,
  proxy: SocksProxy = socks,
): Promise<RegistryClient> {
  const client = await retry(
    'a connection to the registry through tor',
    () =>
      RegistryClient.connect({
        url: registryUrl,
        socks: proxy,
        ...(identity === undefined ? {} : { identity }),
        connectTimeoutMs: 30_000,
        reconnect: { initialDelayMs: 500, maxDelayMs: 5_000, maxAttempts: 200 },
      }),
    { timeoutMs, intervalMs: 1000 },
  );
  clients.push(client);
  return client;
}

/** A client of its own that registered under a fresh nickname (tests share the stack, not data). */
async function registeredPeer(
  prefix: string,
  address = randomOnion(),
  port = 5050,
): Promise<{ client: RegistryClient; nickname: string }> {
  const client = await connectClient(createIdentity());
  const nickname = randomNickname(prefix);
  await client.register({ nickname, address, port });
  return { client, nickname };
}

async function reconnectedInfo(client: RegistryClient, timeoutMs: number): Promise<ReconnectedInfo> {
  const [info] = await nextEvent<[ReconnectedInfo]>(client, 'reconnected', timeoutMs);
  return info;
}

/**
 * The test network has fixed subnets, so only one can exist at a time: remove what an earlier,
 * interrupted run of this suite left behind (only projects named p2p-registry-e2e-*).
 */
async function removeLeftovers(): Promise<void> {
  const { stdout } = await exec('docker', ['compose', 'ls', '--all', '--format', 'json']);
  const projects = (JSON.parse(stdout || '[]') as Array<{ Name: string }>).map((p) => p.Name);
  for (const name of projects.filter((n) => n.startsWith('p2p-registry-e2e-'))) {
    console.warn(`removing the leftovers of an earlier e2e run: ${name}`);
    await exec(
      'docker',
      [
        'compose',
        '-p',
        name,
        '-f',
        'compose.yaml',
        '-f',
        'test/compose.testnet.yaml',
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

/** `up` of the whole project (the stack and the test network) as testcontainers does it, every wait bounded. */
async function startStack(): Promise<StartedDockerComposeEnvironment> {
  const environment: Record<string, string> = {};
  for (const name of ['TOR_BASE_IMAGE', 'NODE_BASE_IMAGE', 'PROMETHEUS_IMAGE']) {
    const value = process.env[name];
    if (value !== undefined && value !== '') environment[name] = value;
  }
  environment.PROMETHEUS_PUBLISH = '127.0.0.1:'; // a random port of the loopback
  const env = new DockerComposeEnvironment(ROOT, ['compose.yaml', 'test/compose.testnet.yaml'])
    .withProjectName(PROJECT)
    .withProfiles('monitoring')
    .withBuild()
    .withEnvironment(environment)
    .withStartupTimeout(240_000)
    .withWaitStrategy('testnet-init-1', Wait.forOneShotStartup())
    .withWaitStrategy('testnet-auth1-1', Wait.forHealthCheck())
    .withWaitStrategy('testnet-client-1', Wait.forHealthCheck())
    .withWaitStrategy('testnet-echo-1', Wait.forHealthCheck())
    .withWaitStrategy('tor-1', Wait.forHealthCheck())
    .withWaitStrategy('registry-1', Wait.forHealthCheck())
    .withWaitStrategy('prometheus-1', Wait.forHealthCheck());
  const started = await upWithDiagnostics(env, PROJECT);
  prometheusUrl = `http://127.0.0.1:${started.getContainer('prometheus-1').getMappedPort(9090)}`;
  stack = started;
  // The client tor's SOCKS port is published on a random host port: a new one after every `up`.
  socks = { host: '127.0.0.1', port: started.getContainer('testnet-client-1').getMappedPort(9050) };
  return started;
}

beforeAll(async () => {
  const started = Date.now();
  await removeLeftovers();
  await startStack();
  timings.stackHealthySeconds = (Date.now() - started) / 1000;
  registryOnion = (await inContainer('tor', ['cat', `${HS_DIR}/hostname`])).output;
  registryUrl = `ws://${registryOnion}:80/`;
  echoOnion = (await inContainer('testnet-echo', ['cat', '/var/lib/tor-testnet/echo/hs/hostname'])).output;
  const healthyAt = Date.now();
  const first = await connectClient();
  timings.firstHelloSeconds = (Date.now() - started) / 1000;
  timings.firstHelloAfterHealthySeconds = (Date.now() - healthyAt) / 1000;
  await first.close();
}, 900_000);

afterEach(async (context) => {
  if (context.task.result?.state === 'fail' && stack !== undefined) {
    // A failing test says why: the stack's own words.
    const { stdout } = await compose('logs', '--no-color', '--tail', '60', 'registry', 'tor', 'testnet-client').catch(
      () => ({ stdout: '(no logs)' }),
    );
    console.error(`--- container logs (${PROJECT}) ---\n${stdout}`);
  }
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  console.log(`e2e timings: ${JSON.stringify(timings)}`);
  if (stack !== undefined) await stack.down({ removeVolumes: true, timeout: 10_000 });
  else await compose('down', '-v', '--remove-orphans').catch(() => undefined);
}, 120_000);

describe('the registry through real onion routing', () => {
  it('reports the onion address that tor wrote to hostname', async () => {
    expect(registryOnion).toMatch(/^[a-z2-7]{56}\.onion$/);
    const client = await connectClient();
    expect(client.hello?.onion).toBe(registryOnion);
    const health = await inContainer('registry', [
      'node',
      '/app/server/dist/cli.js',
      'health',
      '--config',
      '/etc/p2p-registry/config.ini',
    ]);
    expect(health.exitCode).toBe(0);
    expect(JSON.parse(health.output)).toMatchObject({ status: 'ok', onion: registryOnion });
    const logs = (await compose('logs', '--no-color', 'registry')).stdout;
    expect(logs).toContain(`registry reachable at ws://${registryOnion}:80/`);
  });

  it(
    'calls tor healthy only when it serves: bootstrapped, descriptor uploaded, the first hello ' + 'right after',
    async () => {
      const health = await inContainer('tor', ['/usr/local/bin/tor-control', 'health']);
      expect(health.exitCode).toBe(0);
      expect(health.output).toMatch(
        new RegExp(
          `^healthy: serving ${registryOnion.replace('.', '\\.')} \\(bootstrapped; descriptor uploaded \\d+s ago\\)$`,
        ),
      );
      // Before, "healthy" meant "bootstrapped once", and the first connection waited for the upload.
      expect(timings.firstHelloAfterHealthySeconds).toBeLessThan(10);
    },
  );

  it('lets two peers register, look each other up and list each other', async () => {
    const alice = await connectClient(createIdentity());
    const bob = await connectClient(createIdentity());
    const aliceName = randomNickname('alice');
    const bobName = randomNickname('Bob');
    const aliceAddress = randomOnion();
    const bobAddress = randomOnion();
    expect(await alice.register({ nickname: aliceName, address: aliceAddress, port: 7 })).toMatchObject({
      nickname: aliceName,
      address: aliceAddress,
      port: 7,
    });
    await bob.register({ nickname: bobName, address: bobAddress, port: 5050 });
    expect(await bob.lookup(aliceName.toUpperCase())).toMatchObject({
      nickname: aliceName,
      address: aliceAddress,
      keyType: 'ed25519',
    });
    expect(await alice.lookup(bobName.toLowerCase())).toMatchObject({ nickname: bobName, address: bobAddress });
    const names = (await bob.list()).map((p) => p.nickname);
    expect(names).toEqual(expect.arrayContaining([aliceName, bobName]));
  });

  it('serves a peer that gives tor SOCKS credentials of its own (RFC 1929: its own, isolated circuits)', async () => {
    const isolated = await connectClient(createIdentity(), 120_000, {
      ...socks,
      username: `registry-${randomBytes(4).toString('hex')}`,
      password: 'e2e',
    });
    const nickname = randomNickname('isolated');
    await isolated.register({ nickname, address: randomOnion(), port: 5050 });
    const other = await connectClient(createIdentity());
    expect(await other.lookup(nickname)).toMatchObject({ nickname });
  });

  it('shows a peer who found another through the registry reaching its own onion service', async () => {
    // The echo service's owner registers it here: this test depends on no other.
    const { nickname } = await registeredPeer('echo', echoOnion, 7);
    const finder = await connectClient();
    const peer = await finder.lookup(nickname);
    const socket = await socksConnect({ proxy: socks, host: peer.address, port: peer.port, timeoutMs: 60_000 });
    const echoed = await new Promise<string>((resolvePromise, reject) => {
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        text += chunk;
        if (text.includes('\n')) resolvePromise(text);
      });
      socket.on('error', reject);
      socket.write('hello from bob\n');
    });
    socket.destroy();
    expect(echoed).toBe('hello from bob\n');
  });

  it('tells a subscriber who joins and who leaves', async () => {
    const watcher = await connectClient();
    await watcher.subscribe();
    const seen: string[] = [];
    watcher.on('peer_joined', (peer) => seen.push(`+${peer.nickname}`));
    watcher.on('peer_left', (nickname) => seen.push(`-${nickname}`));
    const carol = await registeredPeer('carol');
    await carol.client.close();
    await waitUntil(`peer_left for ${carol.nickname}`, () => seen.includes(`-${carol.nickname}`), {
      timeoutMs: 30_000,
      intervalMs: 200,
      describe: () => `events seen: ${seen.join(' ')}`,
    });
    // Other tests' peers come and go on the same registry; this one's events come in order.
    expect(seen.filter((e) => e.endsWith(carol.nickname))).toEqual([`+${carol.nickname}`, `-${carol.nickname}`]);
  });

  it("refuses a signature made for another connection's challenge", async () => {
    const agent = new SocksAgent(socks);
    try {
      const first = await RawClient.connect(registryUrl, { agent, handshakeTimeout: 60_000 });
      const second = await RawClient.connect(registryUrl, { agent, handshakeTimeout: 60_000 });
      const id = ed25519Identity();
      const signature = signRegistration(id, first.challenge, 'mallory', id.address, 5050);
      const reply = await second.request(
        {
          type: 'register',
          nickname: 'mallory',
          address: id.address,
          port: 5050,
          publicKey: id.publicKeyPem,
          signature,
        },
        60_000,
      );
      expect(reply).toMatchObject({ type: 'error', code: 'BAD_SIGNATURE' });
      first.close();
      second.close();
    } finally {
      agent.destroy();
    }
  });

  it('keeps the onion secret key out of the server container, which has no network and no published port', async () => {
    expect((await inContainer('registry', ['cat', `${HS_DIR}/hostname`])).output).toBe(registryOnion);
    const key = await inContainer('registry', ['cat', `${HS_DIR}/hs_ed25519_secret_key`]);
    expect(key.exitCode).not.toBe(0);
    expect(key.output).toContain('Permission denied');
    expect(await inspect('registry', '{{.HostConfig.NetworkMode}}')).toBe('none');
    expect(await inspect('registry', '{{json .HostConfig.PortBindings}}')).toMatch(/^(null|\{\})$/);
    const services = (
      JSON.parse((await compose('config', '--format', 'json')).stdout) as {
        services: Record<string, { ports?: unknown[] }>;
      }
    ).services;
    expect(services.registry?.ports ?? []).toEqual([]);
    expect(services.tor?.ports ?? []).toEqual([]);
  });

  it(
    'survives a tor restart: same onion address, the server keeps running, clients reconnect and ' + 're-register',
    async () => {
      const dave = await registeredPeer('dave');
      const serverStartedAt = await inspect('registry', '{{.State.StartedAt}}');
      const reconnected = reconnectedInfo(dave.client, 240_000);
      const restartStarted = Date.now();
      await compose('restart', 'tor');
      await waitHealthy('tor', 120_000);
      timings.torRestartHealthySeconds = (Date.now() - restartStarted) / 1000;
      const info = await reconnected;
      timings.torRestartReconnectSeconds = (Date.now() - restartStarted) / 1000;
      expect(info.registered).toMatchObject({ nickname: dave.nickname });
      expect((await inContainer('tor', ['cat', `${HS_DIR}/hostname`])).output).toBe(registryOnion);
      expect(await inspect('registry', '{{.State.StartedAt}}')).toBe(serverStartedAt);
      const other = await connectClient();
      expect(await other.lookup(dave.nickname)).toMatchObject({ nickname: dave.nickname });
    },
  );

  it('survives a server restart: clients reconnect and re-register', async () => {
    const erin = await registeredPeer('erin');
    const reconnected = reconnectedInfo(erin.client, 180_000);
    const restartStarted = Date.now();
    await compose('restart', 'registry');
    const info = await reconnected;
    timings.serverRestartReconnectSeconds = (Date.now() - restartStarted) / 1000;
    expect(info.registered).toMatchObject({ nickname: erin.nickname });
    const other = await connectClient();
    expect(await other.lookup(erin.nickname)).toMatchObject({ nickname: erin.nickname });
  });
});

/** The echo onion's real key, tor's `hs_ed25519_secret_key` read out of the testnet-echo container. */
async function echoOnionKey(): Promise<OnionKey> {
  const { output, exitCode } = await inContainer('testnet-echo', ['base64', '-w', '0', ECHO_KEY]);
  expect(exitCode, output).toBe(0);
  const key = onionKeyFromBytes(Buffer.from(output, 'base64'), `testnet-echo:${ECHO_KEY}`);
  expect(key.address).toBe(echoOnion);
  return key;
}

interface ProvenPeer {
  readonly identity: PeerIdentity;
  readonly onionKey: OnionKey;
  readonly nickname: string;
  readonly client: RegistryClient;
  readonly until: string;
}

/**
 * A fresh key registers the echo onion with its address proof and waits for its claim: `claimed`
 * after the stack's ClaimAfterSeconds (2 s in test/compose.testnet.yaml; at once when it is 0).
 */
async function claimedProvenPeer(prefix: string): Promise<ProvenPeer> {
  const onionKey = await echoOnionKey();
  const identity = createIdentity();
  const client = await connectClient(identity);
  const nickname = randomNickname(prefix);
  const peer = await client.register({ nickname, address: echoOnion, port: 7, onionKey });
  expect(peer).toMatchObject({ nickname, address: echoOnion, addressVerified: true });
  const claim = await waitForValue('the claim (`claimed`)', () => client.claim ?? undefined, {
    timeoutMs: 60_000,
    intervalMs: 100,
  });
  return { identity, onionKey, nickname, client, until: claim.until };
}

/** The registry's own view of a claim, from the operators' command inside the registry container. */
async function claimInStore(nickname: string): Promise<{ exitCode: number; claim: Record<string, unknown> | null }> {
  const shown = await inContainer('registry', [
    'node',
    '/app/server/dist/cli.js',
    'claims',
    'show',
    nickname,
    '--json',
    '--config',
    REGISTRY_CONFIG,
  ]);
  return {
    exitCode: shown.exitCode,
    claim: shown.exitCode === 0 ? (JSON.parse(shown.output) as Record<string, unknown>) : null,
  };
}

/**
 * With its key offline, the claim holds: nobody finds the nickname (claims of offline keys are
 * private), another key gets NICKNAME_TAKEN, the same key gets `registered` with its claim at once.
 * Returns the owner's new client, registered.
 */
async function expectClaimHolds(owner: ProvenPeer): Promise<RegistryClient> {
  const other = await connectClient(createIdentity());
  await expect(other.lookup(owner.nickname)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  await expect(other.register({ nickname: owner.nickname, address: randomOnion(), port: 5050 })).rejects.toMatchObject({
    code: 'NICKNAME_TAKEN',
  });
  await other.close();
  const client = await connectClient(owner.identity);
  const back = await client.register({
    nickname: owner.nickname,
    address: echoOnion,
    port: 7,
    onionKey: owner.onionKey,
  });
  expect(back).toMatchObject({ nickname: owner.nickname, address: echoOnion, addressVerified: true });
  expect(back.claim).not.toBeNull();
  // A refresh: the claim runs ClaimDays (30) from now again, never shorter than before.
  expect(Date.parse(back.claim?.until ?? '')).toBeGreaterThanOrEqual(Date.parse(owner.until));
  expect(Date.parse(back.claim?.until ?? '')).toBeGreaterThan(Date.now() + 29 * 86_400_000);
  return client;
}

/** The end of a claims test: the key releases its claim, so that the echo onion is free for the next. */
async function release(client: RegistryClient, nickname: string): Promise<void> {
  await client.unregister({ release: true });
  expect((await claimInStore(nickname)).exitCode).toBe(1);
}

describe('durable claims and the address proof through the stack', () => {
  it("verifies an address proof made from the echo onion's real hs_ed25519_secret_key", async () => {
    const started = Date.now();
    const owner = await claimedProvenPeer('proof');
    timings.provenClaimSeconds = (Date.now() - started) / 1000;
    const finder = await connectClient();
    expect(await finder.lookup(owner.nickname)).toMatchObject({
      nickname: owner.nickname,
      address: echoOnion,
      port: 7,
      addressVerified: true,
    });
    const stored = await claimInStore(owner.nickname);
    expect(stored).toMatchObject({
      exitCode: 0,
      claim: { nickname: owner.nickname, address: echoOnion, addressVerified: true, until: owner.until },
    });
    await release(owner.client, owner.nickname);
  });

  it('keeps a claim over a restart of the registry container', async () => {
    const owner = await claimedProvenPeer('grace');
    await owner.client.close();
    const serverStartedAt = await inspect('registry', '{{.State.StartedAt}}');
    const restartStarted = Date.now();
    await compose('restart', 'registry');
    await waitHealthy('registry', 120_000);
    expect(await inspect('registry', '{{.State.StartedAt}}')).not.toBe(serverStartedAt);
    expect((await claimInStore(owner.nickname)).claim).toMatchObject({
      nickname: owner.nickname,
      addressVerified: true,
    });
    const client = await expectClaimHolds(owner);
    timings.registryRestartClaimCheckedSeconds = (Date.now() - restartStarted) / 1000;
    await release(client, owner.nickname);
  });

  // Last in this file: `down` takes the test network down too; the stack comes back with a new
  // SOCKS port, and the clients of earlier tests stay behind on the old one until afterAll.
  it('keeps claims over docker compose down (without -v) and up: the registry-data volume', async () => {
    const owner = await claimedProvenPeer('heidi');
    await owner.client.close();
    const downStarted = Date.now();
    await compose('down', '-t', '10');
    timings.downSeconds = (Date.now() - downStarted) / 1000;
    const volumes = (
      await exec('docker', ['volume', 'ls', '-q', '--filter', `name=${PROJECT}_registry-data`])
    ).stdout.trim();
    expect(volumes).toBe(`${PROJECT}_registry-data`);
    const upStarted = Date.now();
    await startStack();
    timings.upHealthySeconds = (Date.now() - upStarted) / 1000;
    expect((await inContainer('tor', ['cat', `${HS_DIR}/hostname`])).output).toBe(registryOnion);
    expect((await claimInStore(owner.nickname)).claim).toMatchObject({
      nickname: owner.nickname,
      addressVerified: true,
    });
    const client = await expectClaimHolds(owner);
    timings.downUpClaimCheckedSeconds = (Date.now() - downStarted) / 1000;
    await release(client, owner.nickname);
  }, 600_000);
});

/** The registry's own count of live peers, from /healthz on its operator socket. */
async function registeredNow(): Promise<number> {
  const { output } = await inContainer('registry', [
    'node',
    '/app/server/dist/cli.js',
    'health',
    '--config',
    REGISTRY_CONFIG,
  ]);
  return (JSON.parse(output) as { peers: number }).peers;
}

describe("monitoring: the monitoring profile's Prometheus", () => {
  it('sees registry_peers equal to the N peers registered', async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await waitUntil('no peer registered', async () => (await registeredNow()) === 0, { timeoutMs: 60_000 });
    const n = 3;
    for (let i = 0; i < n; i += 1) await registeredPeer('gauge');
    expect(await registeredNow()).toBe(n);
    let seen: number | null = null;
    await waitUntil(
      `registry_peers = ${n} in Prometheus`,
      async () => {
        seen = await promValue(prometheusUrl, 'registry_peers');
        return seen === n;
      },
      { timeoutMs: 90_000, intervalMs: 2_000, describe: () => `registry_peers ${seen}` },
    );
  });

  it("has tor's onion-service series (tor_hs_*) for the registry's onion", async () => {
    // An introduction of its own: a client with SOCKS credentials no other used gets circuits of its
    // own, so tor introduces it (a client on shared circuits may ride an existing rendezvous). Then
    // wait for Prometheus's next scrape of tor (every 15 s): the last sample may predate every
    // introduction since the stack's restart (the previous describe's `down` and `up`). Once it is
    // there, tor has been scraped, and every series below must be there too.
    const fresh = await connectClient(createIdentity(), 120_000, {
      ...socks,
      username: `intro-${randomBytes(4).toString('hex')}`,
      password: 'e2e',
    });
    await fresh.list();
    await fresh.close();
    let introductions: number | null = null;
    await waitUntil(
      'sum(tor_hs_intro_num_total) > 0 in Prometheus',
      async () => {
        introductions = await promValue(prometheusUrl, 'sum(tor_hs_intro_num_total)');
        return introductions !== null && introductions > 0;
      },
      { timeoutMs: 60_000, intervalMs: 2_000, describe: () => `sum(tor_hs_intro_num_total) ${introductions}` },
    );
    const onion = registryOnion.replace(/\.onion$/, '');
    for (const name of [
      'tor_hs_intro_num_total',
      'tor_hs_rdv_num_total',
      'tor_hs_intro_rejected_intro_req_count',
      'tor_hs_rdv_error_count',
      'tor_hs_intro_established_count',
      'tor_hs_intro_circ_build_time_bucket',
      'tor_hs_pow_suggested_effort',
    ]) {
      const answer = await promQuery(prometheusUrl, name);
      expect(answer.status, name).toBe('success');
      const ours = answer.result.filter((s) => Object.values(s.metric).some((v) => v.includes(onion)));
      expect(ours.length, `${name} for ${onion}: ${JSON.stringify(answer.result.slice(0, 3))}`).toBeGreaterThan(0);
      expect(ours.every((s) => s.metric.job === 'tor')).toBe(true);
    }
  }, 240_000);

  it('runs every query of the Grafana dashboard (the Cluster panels aside): each parses and returns data', async () => {
    // A refused request, a list and a closed connection, so that every rate has something to count.
    const client = await connectClient();
    await expect(client.lookup(randomNickname('nobody'))).rejects.toThrow();
    await client.list();
    await client.close();
    await expectEveryQueryAnswers(prometheusUrl, dashboardQueries(false), 240_000);
  }, 300_000);

  it('serves no metrics through the onion: GET /metrics there answers 426', async () => {
    const agent = new SocksAgent(socks);
    const res = await retry(
      'GET /metrics through the onion',
      () =>
        new Promise<{ status: number; body: string }>((resolvePromise, reject) => {
          const req = httpGet({ host: registryOnion, port: 80, path: '/metrics', agent }, (answer) => {
            let body = '';
            answer.setEncoding('utf8');
            answer.on('data', (chunk: string) => (body += chunk));
            answer.on('end', () => resolvePromise({ status: answer.statusCode ?? 0, body }));
          });
          req.on('error', reject);
        }),
      { timeoutMs: 120_000, intervalMs: 2_000 },
    );
    agent.destroy();
    expect(res.status).toBe(426);
    expect(res.body).not.toContain('registry_');
  });
});
