/**
 * Protocol revision 2, "Claims" ("Durability": a registration refused changes nothing), over real
 * sockets, at the moments where a registration's claim writes meet other changes: the store is
 * held after a chosen write (test/support/gated-store.ts) while the test changes the registry.
 */
import { createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { gatedStore, type GatedStore } from '../../../../test/support/gated-store.js';
import {
  ed25519Identity,
  onionService,
  type Identity,
  type TestServerOptions,
} from '../../../../test/support/registry-harness.js';
import { claimRows, testSession } from '../../../../test/support/test-session.js';
import { keyIdOf, type ClaimRequest } from '../../store/claim-store.js';
import { openConfiguredStore } from '../../store/open-store.js';

const { server, client } = testSession();

function keyOf(identity: Identity): { keyId: string; publicKeyDer: Uint8Array } {
  const der = new Uint8Array(createPublicKey(identity.publicKeyPem).export({ type: 'spki', format: 'der' }));
  return { keyId: keyIdOf(der), publicKeyDer: der };
}

function claimOf(identity: Identity, nickname: string, extra: Partial<ClaimRequest> = {}): ClaimRequest {
  return { ...keyOf(identity), nickname, address: identity.address, addressVerified: false, ...extra };
}

/** A server on its configured SQLite store, through a gate the test holds calls at. */
async function gatedServer(
  registry: Record<string, string | number>,
  claimAfterSeconds: number,
): Promise<{ s: Awaited<ReturnType<typeof server>>; gated: GatedStore }> {
  let gated: GatedStore | undefined;
  const openStore: TestServerOptions['openStore'] = async (config) => {
    gated = gatedStore(await openConfiguredStore(config.claims));
    return gated.store;
  };
  const s = await server(registry, { claims: { ClaimAfterSeconds: claimAfterSeconds }, openStore });
  if (gated === undefined) throw new Error('the server did not open its store');
  return { s, gated };
}

describe('a registration refused after its claim writes changes nothing', () => {
  it(
    "keeps the key's claim where it was when the registration that moved it is then refused REGISTRY_FULL " +
      '(ClaimAfterSeconds 0)',
    async () => {
      const { s, gated } = await gatedServer({ MaxPeers: 1 }, 0);
      const id = ed25519Identity();
      await gated.inner.claim(claimOf(id, 'alice'));
      const gate = gated.holdAfter('claim', (request) => (request as ClaimRequest).nickname === 'alice2');
      const moving = (await client(s)).register(id, 'alice2', 5050, ed25519Identity().address);
      await gate.reached;
      expect(claimRows(s.database).map((row) => row.nickname)).toEqual(['alice2']);
      expect(await (await client(s)).register(ed25519Identity(), 'filler')).toMatchObject({ type: 'registered' });
      gate.open();
      expect(await moving).toMatchObject({ type: 'error', code: 'REGISTRY_FULL' });
      expect(claimRows(s.database)).toMatchObject([{ nickname: 'alice', address: id.address }, { nickname: 'filler' }]);
    },
  );

  it(
    "keeps the key's claim where it was when the connection closes while the registration that moved it writes " +
      '(ClaimAfterSeconds 0)',
    async () => {
      const { s, gated } = await gatedServer({}, 0);
      const id = ed25519Identity();
      await gated.inner.claim(claimOf(id, 'alice'));
      const gate = gated.holdAfter('claim', (request) => (request as ClaimRequest).nickname === 'alice2');
      const c = await client(s);
      void c.register(id, 'alice2', 5050, ed25519Identity().address).catch(() => undefined);
      await gate.reached;
      c.close();
      await c.closed;
      gate.open();
      await expect.poll(() => claimRows(s.database)).toMatchObject([{ nickname: 'alice', address: id.address }]);
    },
  );

  it(
    'keeps the unverified claim a proven registration would take when that registration is then refused ' +
      'NICKNAME_TAKEN (ClaimAfterSeconds 600)',
    async () => {
      const { s, gated } = await gatedServer({}, 600);
      const service = onionService();
      await gated.inner.claim(claimOf(ed25519Identity(service.address), 'squat'));
      const owner = ed25519Identity();
      const gate = gated.holdAfter(
        'findForRegistration',
        (query) => (query as { keyId: string }).keyId === keyOf(owner).keyId,
      );
      const proving = (await client(s)).registerProven(owner, service, 'owner');
      await gate.reached;
      expect(await (await client(s)).register(ed25519Identity(), 'owner')).toMatchObject({ type: 'registered' });
      gate.open();
      expect(await proving).toMatchObject({ type: 'error', code: 'NICKNAME_TAKEN' });
      expect(claimRows(s.database)).toMatchObject([{ nickname: 'squat', address: service.address }]);
    },
  );
});

describe('the unverified claim a proof displaces', () => {
  it(
    'is deleted only while it is still the claim read: one that moved meanwhile, to a verified address, stays ' +
      '(ClaimAfterSeconds 600)',
    async () => {
      const { s, gated } = await gatedServer({}, 600);
      const service = onionService();
      const squatter = ed25519Identity(service.address);
      await gated.inner.claim(claimOf(squatter, 'squat'));
      const owner = ed25519Identity();
      const gate = gated.holdAfter(
        'findForRegistration',
        (query) => (query as { keyId: string }).keyId === keyOf(owner).keyId,
      );
      const proving = (await client(s)).registerProven(owner, service, 'owner');
      await gate.reached;
      const elsewhere = onionService().address;
      await gated.inner.claim(claimOf(squatter, 'squat', { address: elsewhere, addressVerified: true }));
      gate.open();
      expect(await proving).toMatchObject({ type: 'registered', peer: { addressVerified: true } });
      expect(claimRows(s.database)).toMatchObject([{ nickname: 'squat', address: elsewhere, address_verified: 1 }]);
    },
  );
});
