/**
 * The client's side of PROTOCOL.md revision 3, "Moderation", over real sockets: the operator's
 * decisions are final for the client. `blocked` and close code 4003 close it with BLOCKED; a
 * registration restored after a reconnect and refused BLOCKED or NICKNAME_RESERVED closes it with
 * that refusal; it never reconnects or registers again by itself. Against a fake registry
 * (test/support/fake-registry.ts) and the real one with an operator's decision.
 */
import { createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { cleanupsAfterEach } from '../../../test/support/cleanups.js';
import { deferredFakeRegistry, type FakeRegistry } from '../../../test/support/fake-registry.js';
import { BY } from '../../../test/support/moderation.contract.js';
import { randomOnion, startTestServer } from '../../../test/support/registry-harness.js';
import { delay, nextEvent, registryRejection as rejection } from '../../../test/support/wait.js';
import type { RegistryError } from '../protocol/errors.js';
import { keyDigest } from '../protocol/signing.js';
import { openModerationStore } from '../store/moderation/open-moderation.js';
import { createIdentity } from './identity.js';
import { RegistryClient, type DisconnectInfo, type RegistryClientOptions } from './index.js';

const defer = cleanupsAfterEach();
const fakeRegistry = (): Promise<FakeRegistry> => deferredFakeRegistry(defer, {});

async function client(options: RegistryClientOptions): Promise<RegistryClient> {
  const c = await RegistryClient.connect({ identity: createIdentity(), ...options });
  defer(() => c.close());
  return c;
}

const FAST_RECONNECT = { initialDelayMs: 20, maxDelayMs: 100, jitter: 0 };
/** Several reconnect delays of FAST_RECONNECT: an attempt, had one been scheduled, was made. */
const RECONNECT_WINDOW_MS = 300;

/** A fake that refuses every register from now on with `code`. */
function refuseRegistrations(fake: FakeRegistry, code: string, reason: string): void {
  fake.responders.push((request) =>
    request.type === 'register' ? { type: 'error', code, message: `refused (reason: ${reason})` } : undefined,
  );
}

describe('RegistryClient, revision 3: blocked (4003)', () => {
  it('closes with BLOCKED and the public reason after blocked and 4003, and does not reconnect', async () => {
    const fake = await fakeRegistry();
    const c = await client({ url: fake.url, reconnect: FAST_RECONNECT });
    await c.register({ nickname: 'mallory', address: randomOnion(), port: 1 });
    const blocked = nextEvent<[string | null]>(c, 'blocked');
    const disconnected = nextEvent<[DisconnectInfo]>(c, 'disconnected');
    const closed = nextEvent<[RegistryError | null]>(c, 'closed');
    fake.send({ type: 'blocked', reason: 'impersonation' });
    fake.latest.ws.close(4003, 'blocked');
    expect(await blocked).toEqual(['impersonation']);
    expect((await disconnected)[0]).toMatchObject({ code: 4003, willReconnect: false });
    const [error] = await closed;
    expect(error?.code).toBe('BLOCKED');
    expect(error?.message).toContain('impersonation');
    expect(error?.message).toContain("ask the registry's operator");
    await delay(RECONNECT_WINDOW_MS);
    expect(fake.connections).toHaveLength(1);
    expect(c.state).toBe('closed');
  });

  it('takes close code 4003 alone (no blocked message, no reason) as a block too', async () => {
    const fake = await fakeRegistry();
    const c = await client({ url: fake.url, reconnect: FAST_RECONNECT });
    const closed = nextEvent<[RegistryError | null]>(c, 'closed');
    fake.latest.ws.close(4003, '');
    const [error] = await closed;
    expect(error?.code).toBe('BLOCKED');
    expect(error?.message).not.toContain('reason');
    await delay(RECONNECT_WINDOW_MS);
    expect(fake.connections).toHaveLength(1);
  });
});

describe('RegistryClient, revision 3: refusals while it restores its registration', () => {
  for (const code of ['BLOCKED', 'NICKNAME_RESERVED']) {
    it(
      `closes with ${code} when the registration it restores after a reconnect is refused ${code}, and ` +
        `tries no more`,
      async () => {
        const fake = await fakeRegistry();
        const c = await client({ url: fake.url, reconnect: FAST_RECONNECT });
        await c.register({ nickname: 'admin', address: randomOnion(), port: 1 });
        refuseRegistrations(fake, code, 'decided by the operator');
        const closed = nextEvent<[RegistryError | null]>(c, 'closed');
        fake.latest.ws.terminate(); // an ordinary lost connection: the client reconnects and registers again
        const [error] = await closed;
        expect(error).toMatchObject({ code, fromServer: true });
        expect(error?.message).toContain('decided by the operator');
        await delay(RECONNECT_WINDOW_MS);
        expect(fake.connections).toHaveLength(2);
        expect(fake.requestsOf('register')).toHaveLength(2);
        expect(c.state).toBe('closed');
        expect(c.registration).toBeNull();
      },
    );
  }

  it('surfaces a refusal of its own register call to its caller, sent once and not retried', async () => {
    const fake = await fakeRegistry();
    const c = await client({ url: fake.url, reconnect: FAST_RECONNECT });
    refuseRegistrations(fake, 'NICKNAME_RESERVED', 'the project name');
    const err = await rejection(c.register({ nickname: 'admin', address: randomOnion(), port: 1 }));
    expect(err).toMatchObject({ code: 'NICKNAME_RESERVED', fromServer: true });
    expect(err.message).toContain('the project name');
    await delay(RECONNECT_WINDOW_MS);
    expect(fake.requestsOf('register')).toHaveLength(1);
  });
});

describe('RegistryClient, revision 3: against the real registry', () => {
  it("closes with BLOCKED within a second of the operator's block of its key, and does not reconnect", async () => {
    const registry = await startTestServer({ EventBatchMs: 0 });
    defer(() => registry.close());
    const identity = createIdentity();
    const c = await client({ url: registry.url, identity, reconnect: FAST_RECONNECT });
    expect(c.hello?.features).toContain('moderation');
    await c.register({ nickname: 'mallory', address: randomOnion(), port: 1 });
    const operator = await openModerationStore({ database: registry.database, passwordFile: null });
    defer(() => operator.close());
    const reconnecting: unknown[] = [];
    c.on('reconnecting', (info) => reconnecting.push(info));
    const closed = nextEvent<[RegistryError | null]>(c, 'closed');
    const keyId = keyDigest(createPublicKey(identity.publicKeyPem).export({ format: 'der', type: 'spki' }));
    await operator.block('key', keyId, 'mallory', BY);
    const [error] = await closed;
    expect(error?.code).toBe('BLOCKED');
    expect(error?.message).toContain(String(BY.reason));
    await delay(RECONNECT_WINDOW_MS);
    expect(reconnecting).toEqual([]);
  });
});
