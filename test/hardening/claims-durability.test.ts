/**
 * Claims are security state (PROTOCOL.md "Claims", Durability): a claim that a `registered` reply
 * reported survives kill -9 of the built server, and a store that cannot be written is answered
 * UNAVAILABLE with nothing changed, the server staying up and recovering by itself.
 */
import { execFileSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keyIdOf } from '../../server/src/store/claim-store.js';
import { openSqliteClaimStore } from '../../server/src/store/sqlite/sqlite-store.js';
import {
  ed25519Identity,
  randomNickname,
  randomOnion,
  RawClient,
  tempDir,
  type Frame,
  type Identity,
} from '../support/registry-harness.js';
import { delay } from '../support/wait.js';
import { freePort, startBuiltServer, stopBuiltServer, type BuiltServer } from './built-server.js';
import { crashTestScope } from './crash-test-scope.js';

const ROUNDS = 20;
const LOOP_DEADLINE_MS = 60_000;
const PARALLEL = 8;

const scope = crashTestScope();
const { running, clients } = scope;

function keyIdOfIdentity(identity: Identity): string {
  return keyIdOf(createPublicKey(identity.publicKeyPem).export({ type: 'spki', format: 'der' }));
}

interface Acknowledged {
  readonly nickname: string;
  readonly keyId: string;
}

/**
 * Registers peers on new connections, PARALLEL at a time, until the server is gone; returns those acknowledged with a
 * claim.
 */
async function registerUntilGone(url: string, server: BuiltServer): Promise<Acknowledged[]> {
  const acknowledged: Acknowledged[] = [];
  const alive = (): boolean => server.child.exitCode === null && server.child.signalCode === null;
  const worker = async (): Promise<void> => {
    while (alive()) {
      let client: RawClient;
      try {
        client = await RawClient.connect(url);
      } catch {
        return; // the server died between two registrations
      }
      clients.push(client);
      const identity = ed25519Identity();
      const nickname = randomNickname('crash');
      let reply: Frame;
      try {
        reply = await client.register(identity, nickname);
      } catch {
        return;
      }
      if (reply.type === 'registered' && reply.claim !== null && reply.claim !== undefined)
        acknowledged.push({ nickname, keyId: keyIdOfIdentity(identity) });
      client.ws.terminate();
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  return acknowledged;
}

describe('claims and kill -9', () => {
  it(`keep every claim a registered reply reported, over ${ROUNDS} crashes`, async () => {
    scope.dir = tempDir('claims-crash-');
    const database = join(scope.dir, 'registry.db');
    const port = await freePort();
    const onion = randomOnion();
    const url = `ws://127.0.0.1:${port}/`;
    const sections = { Store: { Database: database }, Claims: { ClaimAfterSeconds: 0 } };
    const deadline = Date.now() + LOOP_DEADLINE_MS;
    const acknowledged: Acknowledged[] = [];
    let rounds = 0;
    while (rounds < ROUNDS && Date.now() < deadline) {
      const server = await startBuiltServer({ dir: scope.dir, listen: { port }, onion, sections });
      running.push(server);
      const registering = registerUntilGone(url, server);
      // Killed at a random moment while registrations are in flight (their commits too).
      await delay(80 + Math.random() * 220);
      expect(await stopBuiltServer(server, 'SIGKILL')).toBe('SIGKILL');
      running.splice(running.indexOf(server), 1);
      acknowledged.push(...(await registering));
      rounds += 1;
    }
    expect(rounds).toBe(ROUNDS);
    expect(acknowledged.length).toBeGreaterThan(ROUNDS);

    const store = await openSqliteClaimStore({ path: database, claimDays: 30 });
    const missing: string[] = [];
    for (const { nickname, keyId } of acknowledged) {
      const claim = await store.getByNickname(nickname);
      if (claim?.keyId !== keyId) missing.push(nickname);
    }
    await store.close();
    expect(missing).toEqual([]);

    // And the restarted server enforces them: another key gets NICKNAME_TAKEN for a claimed nickname.
    const server = await startBuiltServer({ dir: scope.dir, listen: { port }, onion, sections });
    running.push(server);
    const other = await RawClient.connect(url);
    clients.push(other);
    const taken = await other.register(ed25519Identity(), (acknowledged[0] as Acknowledged).nickname);
    expect(taken).toMatchObject({ type: 'error', code: 'NICKNAME_TAKEN' });
  }, 120_000);
});

describe('a claim store that cannot be written', () => {
  it('answers UNAVAILABLE with retryAfterMs, changes nothing, keeps serving and recovers', async () => {
    scope.dir = tempDir('claims-readonly-');
    const database = join(scope.dir, 'registry.db');
    const port = await freePort();
    const url = `ws://127.0.0.1:${port}/`;
    const server = await startBuiltServer({
      dir: scope.dir,
      listen: { port },
      onion: randomOnion(),
      sections: { Store: { Database: database }, Claims: { ClaimAfterSeconds: 0 } },
      logThroughPipe: true,
    });
    running.push(server);
    // As root, chmod does not stop writes: a file-size limit of 0 on the server process makes every
    // write to a regular file fail (EFBIG), which SQLite reports as an I/O error, as on a full disk.
    execFileSync('prlimit', ['--pid', String(server.pid), '--fsize=0:unlimited']);
    const watcher = await RawClient.connect(url);
    clients.push(watcher);
    await watcher.request({ type: 'subscribe' });
    const peer = await RawClient.connect(url);
    clients.push(peer);
    const nickname = randomNickname('ro');
    const refused = await peer.register(ed25519Identity(), nickname);
    expect(refused).toMatchObject({ type: 'error', code: 'UNAVAILABLE', retryAfterMs: expect.any(Number) });
    // Nothing changed: no live registration, no event, and the server answers.
    expect((await watcher.request({ type: 'lookup', nickname })).code).toBe('NOT_FOUND');
    expect(watcher.events()).toEqual([]);
    expect((await peer.request({ type: 'ping' })).type).toBe('pong');

    execFileSync('prlimit', ['--pid', String(server.pid), '--fsize=unlimited:unlimited']);
    const again = await RawClient.connect(url);
    clients.push(again);
    const identity = ed25519Identity();
    const accepted = await again.register(identity, nickname);
    expect(accepted).toMatchObject({ type: 'registered', claim: { until: expect.any(String) } });
    expect(server.child.exitCode).toBeNull();
  }, 60_000);
});
