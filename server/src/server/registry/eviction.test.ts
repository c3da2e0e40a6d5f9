/**
 * Protocol revision 2 over real sockets: one key, one live registration (4001 across nicknames),
 * and the address proof (addressVerified, BAD_ADDRESS_PROOF, ADDRESS_PROOF_REQUIRED, eviction 4002).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ed25519Identity,
  onionService,
  signAddressProof,
  tempDir,
  type RawClient,
  type TestServer,
} from '../../../../test/support/registry-harness.js';
import { claimRows, testSession } from '../../../../test/support/test-session.js';
import { delay } from '../../../../test/support/wait.js';

const { server, client } = testSession();

/** Every event a subscriber got, as [type, nickname, port]. */
async function eventsOf(watcher: RawClient, count: number): Promise<Array<[string, string, number | undefined]>> {
  await watcher.waitUntil(() => watcher.events().length >= count);
  await delay(100);
  return watcher.events().map((e) => {
    const peer = e.peer as { nickname: string; port: number } | undefined;
    return [e.type, peer?.nickname ?? (e.nickname as string), peer?.port];
  });
}

/** A server that sends events at once, and a client subscribed to them. */
async function watchedServer(): Promise<{ s: TestServer; watcher: RawClient }> {
  const s = await server({ EventBatchMs: 0 });
  const watcher = await client(s);
  await watcher.request({ type: 'subscribe' });
  return { s, watcher };
}

describe('one key, one live registration', () => {
  it(
    "replaces the same key's registration under another nickname and address: replaced, 4001, peer_left then " +
      'peer_joined',
    async () => {
      const { s, watcher } = await watchedServer();
      const id = ed25519Identity();
      const old = await client(s);
      await old.register(id, 'alice', 5050);
      const fresh = await client(s);
      const elsewhere = ed25519Identity().address;
      expect(await fresh.register(id, 'alicia', 6060, elsewhere)).toMatchObject({
        type: 'registered',
        peer: { nickname: 'alicia', address: elsewhere },
      });
      await old.waitFor((f) => f.type === 'replaced');
      expect((await old.closed).code).toBe(4001);
      expect(await eventsOf(watcher, 3)).toEqual([
        ['peer_joined', 'alice', 5050],
        ['peer_left', 'alice', undefined],
        ['peer_joined', 'alicia', 6060],
      ]);
      expect(await watcher.request({ type: 'lookup', nickname: 'alice' })).toMatchObject({ code: 'NOT_FOUND' });
      expect(await watcher.request({ type: 'list' })).toMatchObject({ peers: [{ nickname: 'alicia' }] });
    },
  );

  it('replaces it under the same nickname with one peer_joined carrying the new peer object', async () => {
    const { s, watcher } = await watchedServer();
    const id = ed25519Identity();
    const old = await client(s);
    await old.register(id, 'alice', 5050);
    await (await client(s)).register(id, 'Alice', 6060, ed25519Identity().address);
    expect((await old.closed).code).toBe(4001);
    expect(await eventsOf(watcher, 2)).toEqual([
      ['peer_joined', 'alice', 5050],
      ['peer_joined', 'Alice', 6060],
    ]);
  });
});

describe('address proof', () => {
  it('marks a registration with a valid proof addressVerified, and every other one not', async () => {
    const s = await server();
    const service = onionService();
    const proven = await (await client(s)).registerProven(ed25519Identity(), service, 'owner');
    expect(proven).toMatchObject({
      type: 'registered',
      peer: { nickname: 'owner', address: service.address, addressVerified: true },
    });
    expect(await (await client(s)).register(ed25519Identity(), 'plain')).toMatchObject({
      peer: { addressVerified: false },
    });
    const watcher = await client(s);
    expect(await watcher.request({ type: 'lookup', nickname: 'owner' })).toMatchObject({
      peer: { addressVerified: true },
    });
    expect(await watcher.request({ type: 'list' })).toMatchObject({
      peers: [{ addressVerified: true }, { addressVerified: false }],
    });
  });

  it('verifies the proof over the address exactly as sent (upper case, without .onion)', async () => {
    const s = await server();
    const service = onionService();
    const c = await client(s);
    const id = ed25519Identity();
    const sent = service.address.slice(0, 56).toUpperCase();
    const reply = await c.register(id, 'owner', 5050, sent, {
      addressProof: signAddressProof(service, id, c.challenge, sent),
    });
    expect(reply).toMatchObject({ type: 'registered', peer: { address: service.address, addressVerified: true } });
  });

  it(
    'refuses a proof by another key, over another challenge, for another registering key, or not base64, with ' +
      'BAD_ADDRESS_PROOF',
    async () => {
      const s = await server();
      const service = onionService();
      const id = ed25519Identity();
      const c = await client(s);
      const proofs = [
        signAddressProof(onionService(), id, c.challenge, service.address),
        signAddressProof(service, id, (await client(s)).challenge),
        signAddressProof(service, ed25519Identity(), c.challenge),
        'not base64!',
        Buffer.alloc(10).toString('base64'),
      ];
      for (const addressProof of proofs) {
        expect(await c.register(id, 'owner', 5050, service.address, { addressProof })).toMatchObject({
          type: 'error',
          code: 'BAD_ADDRESS_PROOF',
        });
      }
      expect(await c.request({ type: 'lookup', nickname: 'owner' })).toMatchObject({ code: 'NOT_FOUND' });
      expect(await c.register(id, 'owner', 5050, service.address, { addressProof: 5 })).toMatchObject({
        code: 'BAD_REQUEST',
      });
    },
  );

  it('with RequireAddressProof refuses a registration without one with ADDRESS_PROOF_REQUIRED', async () => {
    const s = await server({ RequireAddressProof: 'true' });
    expect(await (await client(s)).register(ed25519Identity(), 'plain')).toMatchObject({
      type: 'error',
      code: 'ADDRESS_PROOF_REQUIRED',
    });
    expect(await (await client(s)).registerProven(ed25519Identity(), onionService(), 'owner')).toMatchObject({
      type: 'registered',
    });
  });

  it('charges the proof to the signature budget', async () => {
    const s = await server({ SignatureChecksPerSecond: 1 });
    const reply = await (await client(s)).registerProven(ed25519Identity(), onionService(), 'owner');
    expect(reply).toMatchObject({ type: 'error', code: 'RATE_LIMITED' });
  });
});

describe('eviction by a proven owner', () => {
  it(
    'evicts a live unverified holder of the address with another key: evicted, 4002, and subscribers see its ' +
      'peer_left',
    async () => {
      const { s, watcher } = await watchedServer();
      const service = onionService();
      const squatter = await client(s);
      await squatter.register(ed25519Identity(service.address), 'squatter', 5050);
      const owner = await client(s);
      expect(await owner.registerProven(ed25519Identity(), service, 'owner', 6060)).toMatchObject({
        type: 'registered',
        peer: { addressVerified: true },
      });
      expect(await squatter.waitFor((f) => f.type === 'evicted')).toEqual({
        type: 'evicted',
        reason: 'address proven by its owner',
      });
      expect((await squatter.closed).code).toBe(4002);
      expect(await eventsOf(watcher, 3)).toEqual([
        ['peer_joined', 'squatter', 5050],
        ['peer_left', 'squatter', undefined],
        ['peer_joined', 'owner', 6060],
      ]);
    },
  );

  it('deletes an unverified claim of another key on the address, freeing its nickname too', async () => {
    const s = await server({}, { claims: { ClaimAfterSeconds: 0 } });
    const service = onionService();
    const squatter = await client(s);
    await squatter.register(ed25519Identity(service.address), 'squatter');
    squatter.close();
    await squatter.closed;
    expect(await (await client(s)).register(ed25519Identity(service.address), 'other')).toMatchObject({
      code: 'ADDRESS_TAKEN',
    });
    expect(await (await client(s)).registerProven(ed25519Identity(), service, 'owner')).toMatchObject({
      type: 'registered',
      claim: { until: expect.any(String) },
    });
    expect(claimRows(s.database)).toMatchObject([{ nickname: 'owner', address: service.address, address_verified: 1 }]);
    expect(await (await client(s)).register(ed25519Identity(), 'squatter')).toMatchObject({ type: 'registered' });
  });

  it("deletes that claim also while the owner's own claim still waits for ClaimAfterSeconds", async () => {
    const database = join(tempDir('claims-'), 'registry.db');
    const first = await server({}, { claims: { ClaimAfterSeconds: 0 }, database });
    const service = onionService();
    const squatter = await client(first);
    await squatter.register(ed25519Identity(service.address), 'squatter');
    await first.close();
    const s = await server({}, { claims: { ClaimAfterSeconds: 600 }, port: first.port, database });
    expect(await (await client(s)).registerProven(ed25519Identity(), service, 'owner')).toMatchObject({
      type: 'registered',
      claim: null,
    });
    expect(claimRows(database)).toEqual([]);
    expect(await (await client(s)).register(ed25519Identity(), 'squatter')).toMatchObject({ type: 'registered' });
  });

  it(
    'displaces a live squatter that holds both the nickname and the address: evicted, 4002, and the owner registers ' +
      '(erratum 1)',
    async () => {
      const s = await server({ EventBatchMs: 0 }, { claims: { ClaimAfterSeconds: 0 } });
      const watcher = await client(s);
      await watcher.request({ type: 'subscribe' });
      const service = onionService();
      const squatter = await client(s);
      expect(await squatter.register(ed25519Identity(service.address), 'alice', 5050)).toMatchObject({
        type: 'registered',
        claim: { until: expect.any(String) },
      });
      const owner = await client(s);
      const reply = await owner.registerProven(ed25519Identity(), service, 'alice', 6060);
      expect(reply).toMatchObject({
        type: 'registered',
        peer: { nickname: 'alice', addressVerified: true },
        claim: { until: expect.any(String) },
      });
      expect(await squatter.waitFor((f) => f.type === 'evicted')).toEqual({
        type: 'evicted',
        reason: 'address proven by its owner',
      });
      expect((await squatter.closed).code).toBe(4002);
      expect(await eventsOf(watcher, 3)).toEqual([
        ['peer_joined', 'alice', 5050],
        ['peer_left', 'alice', undefined],
        ['peer_joined', 'alice', 6060],
      ]);
      expect(claimRows(s.database)).toMatchObject([
        { nickname: 'alice', address: service.address, address_verified: 1 },
      ]);
    },
  );

  // 0: the owner's claim is written at once and takes the squatter's place; 1: the squatter's claim
  // is released and the owner's own waits for its second.
  it.each([
    [0, [{ nickname: 'alice', address_verified: 1 }]],
    [1, []],
  ])(
    'displaces the claim of an offline squatter that holds both the nickname and the address (ClaimAfterSeconds %i, ' +
      'erratum 1)',
    async (after, rows) => {
      const s = await server({}, { claims: { ClaimAfterSeconds: after } });
      const service = onionService();
      const squatter = await client(s);
      await squatter.register(ed25519Identity(service.address), 'alice');
      if (after > 0) await squatter.waitFor((f) => f.type === 'claimed', 5_000);
      squatter.close();
      await squatter.closed;
      await expect.poll(() => s.server.stats().peers).toBe(0);
      expect(await (await client(s)).register(ed25519Identity(), 'alice')).toMatchObject({ code: 'NICKNAME_TAKEN' });
      expect(await (await client(s)).registerProven(ed25519Identity(), service, 'alice')).toMatchObject({
        type: 'registered',
        peer: { addressVerified: true },
      });
      expect(claimRows(s.database)).toMatchObject(rows);
    },
  );

  it('never lets an unverified registration take a proven address, live or claimed', async () => {
    const s = await server({}, { claims: { ClaimAfterSeconds: 0 } });
    const service = onionService();
    const owner = await client(s);
    await owner.registerProven(ed25519Identity(), service, 'owner');
    const refused = await (await client(s)).register(ed25519Identity(service.address), 'squatter');
    expect(refused).toMatchObject({ type: 'error', code: 'ADDRESS_TAKEN' });
    owner.close();
    await owner.closed;
    await delay(50);
    expect(await (await client(s)).register(ed25519Identity(service.address), 'squatter')).toMatchObject({
      type: 'error',
      code: 'ADDRESS_TAKEN',
      message: expect.stringContaining('proven'),
    });
  });
});
