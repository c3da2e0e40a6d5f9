#!/usr/bin/env node
/**
 * `make bench-failover` / `npm run bench:failover`: what peers live through when a cluster backend
 * goes away, through real onion routing. The cluster (compose.cluster.yaml) runs on the private
 * Tor test network of the cluster e2e (test/compose.cluster-testnet.yaml: no tor here ever
 * contacts the public Tor network), in a compose project of its own.
 *
 *   node bench/failover.mjs                   every scenario, writes bench/results-failover.json
 *   node bench/failover.mjs --only kill       one scenario (upgrade, drain-stop, kill, pause)
 *   node bench/failover.mjs --fresh 20 --peers 6 --keep   counts; --keep leaves the stack up
 *
 * Each scenario starts from both backends serving, with `--peers` peers registered through the
 * master onion (the client library, each on circuits of its own: its own SOCKS credentials), and
 * the client tor holding the master descriptor as it was before the event. At t=0 the event:
 *   upgrade      backend1's registry container is replaced (make cluster-upgrade's step); its tor runs on
 *   drain-stop   backend1 drained (make cluster-drain, the frontend publishes without it), the drain
 *                waited out (WAIT=1: the client tor's cached descriptor expires), then its tor and
 *                registry stop
 *   kill         backend1's tor and registry get SIGKILL (nobody drained it)
 *   pause        backend1's tor and registry are frozen (docker pause: a host that hangs without
 *                closing its connections), for --pause-seconds (120)
 * From t=0, `--fresh` fresh peers, one every `--fresh-every-ms` (500), each as an app would use
 * the client library: connect (its own circuits; the library races a slow attempt), and on a
 * failure connect again, for up to 90 s. And the registered peers whose connection the event
 * ended reconnect by themselves (the library's reconnect). For both: how many were in within 10,
 * 30 and 90 s, and p50/p90/max of the time to a hello (fresh) or to the registration restored
 * (reconnecting), from the peer's start (fresh) or from t=0 (reconnecting).
 */
import { execFile as execFileCb } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { machineInfo } from './lib/registry.mjs';

const execFile = promisify(execFileCb);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DIST_CLIENT = join(ROOT, 'server/dist/client/index.js');
const PROJECT = 'p2p-registry-failover-bench';
const FILES = ['compose.cluster.yaml', 'test/compose.cluster-testnet.yaml'];
const COMPOSE = ['compose', '-p', PROJECT, ...FILES.flatMap((f) => ['-f', f]), '--profile', 'all'];
const SCENARIOS = ['upgrade', 'drain-stop', 'kill', 'pause'];
const WINDOWS_S = [10, 30, 90];
const GIVE_UP_MS = 90_000;

function parseArgs(argv) {
  const opts = { only: SCENARIOS, fresh: 20, freshEveryMs: 500, peers: 6, pauseSeconds: 120, keep: false };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const number = () => {
      const value = Number(argv[++i]);
      if (!Number.isInteger(value) || value < 0) throw new Error(`${arg} needs a whole number`);
      return value;
    };
    if (arg === '--only') {
      const names = (argv[++i] ?? '').split(',');
      for (const name of names)
        if (!SCENARIOS.includes(name)) throw new Error(`--only ${name}: one of ${SCENARIOS.join(', ')}`);
      opts.only = names;
    } else if (arg === '--fresh') opts.fresh = number();
    else if (arg === '--fresh-every-ms') opts.freshEveryMs = number();
    else if (arg === '--peers') opts.peers = number();
    else if (arg === '--pause-seconds') opts.pauseSeconds = number();
    else if (arg === '--keep') opts.keep = true;
    else throw new Error(`unknown argument ${arg} (see the top of bench/failover.mjs)`);
  }
  if (!existsSync(DIST_CLIENT)) throw new Error(`${DIST_CLIENT} does not exist: run \`npm run build\` first`);
  return opts;
}

const started = performance.now();
const log = (message) =>
  process.stderr.write(`[failover ${((performance.now() - started) / 1000).toFixed(1)}s] ${message}\n`);

async function docker(args, options = {}) {
  const { stdout } = await execFile('docker', args, {
    cwd: ROOT,
    maxBuffer: 32 * 1024 * 1024,
    env: { ...process.env, ...(options.env ?? {}) },
  });
  return stdout.trim();
}
const compose = (...args) => docker([...COMPOSE, ...args]);
const inContainer = (service, ...command) => compose('exec', '-T', service, ...command);

async function clusterOps(...args) {
  const { stdout } = await execFile('bash', ['tor/cluster-ops.sh', ...args], {
    cwd: ROOT,
    env: { ...process.env, COMPOSE: `docker ${COMPOSE.join(' ')}` },
    maxBuffer: 8 * 1024 * 1024,
  });
  return stdout;
}

async function until(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(1000);
  }
}

const utc = (time) => (time === null || time === undefined ? Number.NaN : Date.parse(`${time.replace(' ', 'T')}Z`));

/** Both master descriptors published after `since` with exactly `onions`. */
async function published(onions, since) {
  const status = JSON.parse(await inContainer('frontend', '/usr/local/bin/cluster', 'status')).services[0];
  const have = status.instances.map((i) => i.onionAddress).sort();
  const at = Math.min(utc(status.publishAttemptFirstDescriptor), utc(status.publishAttemptSecondDescriptor));
  return JSON.stringify(have) === JSON.stringify([...onions].sort()) && at >= Math.floor(since / 1000) * 1000
    ? at
    : undefined;
}

async function healthy(service) {
  return (await docker(['inspect', '-f', '{{.State.Health.Status}}', `${PROJECT}-${service}-1`])) === 'healthy';
}

/** A fresh client tor state (NEWNYM on the test client tor's container-local control port). */
async function freshClientTor() {
  await inContainer(
    'testnet-client',
    'bash',
    '-c',
    'exec 3<>/dev/tcp/127.0.0.1/9051 && printf "AUTHENTICATE\\r\\nSIGNAL NEWNYM\\r\\nQUIT\\r\\n" >&3 && cat <&3 ' +
      '>/dev/null',
  );
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Seconds to success (null: never within GIVE_UP_MS) → the summary of one group. */
function summarise(seconds) {
  const ok = seconds.filter((s) => s !== null).sort((a, b) => a - b);
  const within = Object.fromEntries(WINDOWS_S.map((w) => [`within${w}s`, ok.filter((s) => s <= w).length]));
  const round = (v) => (v === null ? null : Math.round(v * 1000) / 1000);
  return {
    n: seconds.length,
    ...within,
    p50: round(percentile(ok, 50)),
    p90: round(percentile(ok, 90)),
    max: round(ok.at(-1) ?? null),
    seconds: seconds.map(round),
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const { RegistryClient, createIdentity, onionAddressFromPublicKey } = await import(DIST_CLIENT);
  const { generateKeyPairSync } = await import('node:crypto');
  const randomOnion = () =>
    onionAddressFromPublicKey(
      generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(12),
    );
  const baseImages = join(ROOT, 'test/.run/base-images.env');
  const imageEnv = existsSync(baseImages)
    ? Object.fromEntries(
        [...readFileSync(baseImages, 'utf8').matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [
          m[1],
          m[2].replace(/^'|'$/g, ''),
        ]),
      )
    : {};

  log('starting the cluster on the private test network');
  await docker([...COMPOSE, 'down', '-v', '--remove-orphans', '-t', '2']).catch(() => undefined);
  await docker([...COMPOSE, 'up', '-d', '--build', '--wait', '--wait-timeout', '600'], { env: imageEnv });
  const master = (
    await inContainer(
      'postgres',
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
      'SELECT master_onion FROM registry_frontend',
    )
  ).trim();
  const onion = {};
  for (const b of ['backend1', 'backend2'])
    onion[b] = await inContainer(`${b}-tor`, 'cat', '/var/lib/tor/hidden_service/hostname');
  const port = Number((await compose('port', 'testnet-client', '9050')).split(':').pop());
  const socks = () => ({
    host: '127.0.0.1',
    port,
    username: `bench-${randomBytes(6).toString('hex')}`,
    password: 'bench',
  });
  const connect = (options = {}) =>
    RegistryClient.connect({
      url: `ws://${master}:80/`,
      socks: socks(),
      connectTimeoutMs: 30_000,
      reconnect: { initialDelayMs: 500, maxDelayMs: 5_000, maxAttempts: 1_000 },
      ...options,
    });
  await until('both backends in the master descriptor', () => published([onion.backend1, onion.backend2], 0), 300_000);
  await until(
    'a first hello through the master onion',
    async () => (await connect()).close().then(() => true),
    180_000,
  );
  log(`master ${master}; SOCKS 127.0.0.1:${port}`);

  async function bothServing(label) {
    const since = Date.now();
    await until(
      `${label}: backend1 and backend2 healthy`,
      async () =>
        (await healthy('backend1-tor')) && (await healthy('backend1-registry')) && (await healthy('backend2-registry')),
      300_000,
    );
    await until(
      `${label}: both in the master descriptor`,
      () => published([onion.backend1, onion.backend2], 0),
      300_000,
    );
    log(`${label}: both backends serving (${((Date.now() - since) / 1000).toFixed(0)} s)`);
  }

  async function registeredPeers(count) {
    const peers = [];
    for (let i = 0; i < count; i += 1) {
      const client = await connect({ identity: createIdentity() });
      const nickname = `fo${randomBytes(5).toString('hex')}`;
      await client.register({ nickname, address: randomOnion(), port: 5050 });
      const peer = { client, nickname, lost: null, back: null };
      client.on('disconnected', () => {
        peer.lost ??= Date.now();
      });
      client.on('reconnected', () => {
        if (peer.lost !== null && peer.back === null) peer.back = Date.now();
      });
      peers.push(peer);
    }
    return peers;
  }

  async function freshPeer(_t0, delayMs) {
    await sleep(delayMs);
    const begun = Date.now();
    let attempts = 0;
    while (Date.now() - begun < GIVE_UP_MS) {
      attempts += 1;
      try {
        const client = await connect({ connectTimeoutMs: Math.min(30_000, GIVE_UP_MS - (Date.now() - begun)) });
        const seconds = (Date.now() - begun) / 1000;
        await client.close();
        return { seconds, attempts };
      } catch {
        await sleep(500);
      }
    }
    return { seconds: null, attempts };
  }

  const events = {
    upgrade: {
      run: () => compose('up', '-d', '--no-deps', '--force-recreate', 'backend1-registry'),
      after: async () => {},
    },
    'drain-stop': {
      before: async () => {
        log(
          'drain-stop: draining backend1 and waiting until no descriptor that lists it can be cached (make ' +
            'cluster-drain WAIT=1)',
        );
        await clusterOps('drain', 'backend1', '--reason', 'bench', '--wait');
      },
      run: () => compose('stop', '-t', '5', 'backend1-tor', 'backend1-registry'),
      after: async () => {
        await compose('start', 'backend1-tor', 'backend1-registry');
        await until(
          'backend1 healthy',
          async () => (await healthy('backend1-tor')) && (await healthy('backend1-registry')),
          300_000,
        );
        await clusterOps('undrain', 'backend1');
      },
    },
    kill: {
      run: () => compose('kill', '-s', 'KILL', 'backend1-tor', 'backend1-registry'),
      after: () => compose('start', 'backend1-tor', 'backend1-registry'),
    },
    pause: {
      run: () => compose('pause', 'backend1-tor', 'backend1-registry'),
      during: (t0) =>
        sleep(Math.max(0, t0 + opts.pauseSeconds * 1000 - Date.now())).then(() =>
          compose('unpause', 'backend1-tor', 'backend1-registry'),
        ),
      after: async () => {},
    },
  };

  const results = {};
  for (const name of opts.only) {
    const event = events[name];
    await bothServing(name);
    await freshClientTor();
    const peers = await registeredPeers(opts.peers);
    await event.before?.();
    log(`${name}: t=0`);
    const t0 = Date.now();
    await event.run();
    const during = event.during?.(t0);
    const fresh = await Promise.all(Array.from({ length: opts.fresh }, (_, i) => freshPeer(t0, i * opts.freshEveryMs)));
    // The registered peers whose connection the event ended: back within 90 s of t=0, or not.
    await sleep(Math.max(0, t0 + GIVE_UP_MS - Date.now()));
    const lost = peers.filter((p) => p.lost !== null);
    const reconnecting = lost.map((p) => (p.back === null ? null : (p.back - t0) / 1000));
    await during;
    results[name] = {
      fresh: {
        ...summarise(fresh.map((f) => f.seconds)),
        failedAttempts: fresh.reduce((n, f) => n + f.attempts - (f.seconds === null ? 0 : 1), 0),
      },
      // When each noticed the loss (a closed connection at once; a hung one at its liveness timeout).
      reconnecting: {
        ...summarise(reconnecting),
        registered: peers.length,
        lostAfterSeconds: lost.map((p) => Math.round(p.lost - t0) / 1000),
      },
    };
    log(`${name}: ${JSON.stringify(results[name].fresh)} | reconnecting ${JSON.stringify(results[name].reconnecting)}`);
    await Promise.all(peers.map((p) => p.client.close()));
    await event.after();
  }

  const out = {
    date: new Date().toISOString(),
    machine: machineInfo(),
    network: 'private Tor test network (6 authorities, 2 relays), 2 backends',
    options: opts,
    scenarios: results,
  };
  writeFileSync(join(ROOT, 'bench/results-failover.json'), `${JSON.stringify(out, null, 2)}\n`);
  log('wrote bench/results-failover.json');
  console.log('scenario      group          n   <=10s  <=30s  <=90s  p50     p90     max');
  for (const [name, r] of Object.entries(results)) {
    for (const group of ['fresh', 'reconnecting']) {
      const g = r[group];
      console.log(
        `${name.padEnd(13)} ${group.padEnd(13)} ${String(g.n).padStart(3)} ${String(g.within10s).padStart(6)} ` +
          `${String(g.within30s).padStart(6)} ${String(g.within90s).padStart(6)}  ${String(g.p50).padEnd(7)} ` +
          `${String(g.p90).padEnd(7)} ${g.max}`,
      );
    }
  }
  if (!opts.keep) await docker([...COMPOSE, 'down', '-v', '--remove-orphans', '-t', '2']);
}

main().catch(async (err) => {
  process.stderr.write(`bench-failover: ${err?.stack ?? err}\n`);
  if (!process.argv.includes('--keep'))
    await docker([...COMPOSE, 'down', '-v', '--remove-orphans', '-t', '2']).catch(() => undefined);
  process.exit(1);
});
