/**
 * The moderation rules (PROTOCOL.md revision 3, "Moderation") over real sockets, run on SQLite
 * (server/src/server/moderation/moderation.test.ts) and on PostgreSQL with two instances
 * (test/cluster/moderation-cluster.test.ts). `setup` gives two servers on one database (on SQLite
 * both are the same server) and an operator's store on that database, as the CLI opens it.
 */
import { createPublicKey } from 'node:crypto';
import { expect, it } from 'vitest';
import { keyDigest } from '../../server/src/protocol/signing.js';
import type { Decision, ModerationStore } from '../../server/src/store/moderation/moderation-store.js';
import { NicknamePattern } from '../../server/src/server/moderation/nickname-pattern.js';
import { ed25519Identity, type Identity, type RawClient, type TestServer } from './registry-harness.js';

export interface ModerationSetup {
  /** Where peers register (`a`) and where a decision must reach too (`b`; the same server on SQLite). */
  readonly a: TestServer;
  readonly b: TestServer;
  readonly operator: ModerationStore;
  readonly connect: (server: TestServer) => Promise<RawClient>;
  /** Whether `nickname` has a claim in the database. */
  readonly claimed: (nickname: string) => Promise<boolean>;
}

export const BY: Decision = { by: 'test-operator', reason: 'impersonation', note: 'ticket 42', expiresAt: null };

export function keyIdOf(identity: Identity): string {
  return keyDigest(createPublicKey(identity.publicKeyPem).export({ format: 'der', type: 'spki' }));
}

/** A registration's answer and, when it was let in, the connection. */
async function registered(client: RawClient, identity: Identity, nickname: string): Promise<void> {
  const reply = await client.register(identity, nickname);
  expect(reply.type, JSON.stringify(reply)).toBe('registered');
}

export function moderationRules(setup: () => Promise<ModerationSetup>): void {
  it(
    'closes a live registration whose key is blocked with blocked and 4003 within a second, deletes its claim and ' +
      'tells subscribers',
    async () => {
      const { a, b, operator, connect, claimed } = await setup();
      const peer = ed25519Identity();
      const client = await connect(a);
      await registered(client, peer, 'mallory');
      const watcher = await connect(b);
      expect((await watcher.request({ type: 'subscribe' })).type).toBe('subscribed');
      expect(await claimed('mallory')).toBe(true);
      const started = Date.now();
      await operator.block('key', keyIdOf(peer), 'mallory', BY);
      await client.waitFor((f) => f.type === 'blocked', 2_000);
      expect(client.frames.find((f) => f.type === 'blocked')).toEqual({ type: 'blocked', reason: 'impersonation' });
      expect((await client.closed).code).toBe(4003);
      expect(Date.now() - started).toBeLessThan(1_500);
      await watcher.waitFor((f) => f.type === 'peer_left' && f.nickname === 'mallory', 2_000);
      expect(await claimed('mallory')).toBe(false);
      // And later registrations of the key are refused BLOCKED, with the public reason, never the note
      // (on every server once a second has passed).
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, started + 1_000 - Date.now())));
      const again = await connect(b);
      const refused = await again.register(peer, 'mallory2');
      expect(refused).toMatchObject({ type: 'error', code: 'BLOCKED' });
      expect(String(refused.message)).toContain('impersonation');
      expect(String(refused.message)).not.toContain('ticket 42');
    },
  );

  it('refuses a blocked address with BLOCKED, and lets it in again once unblocked', async () => {
    const { a, operator, connect } = await setup();
    const peer = ed25519Identity();
    await operator.block('address', peer.address, null, { ...BY, reason: null });
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // every server has applied it
    const client = await connect(a);
    expect(await client.register(ed25519Identity(peer.address), 'someone')).toMatchObject({ code: 'BLOCKED' });
    expect(await operator.unblock('address', peer.address, BY)).not.toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await registered(await connect(a), peer, 'someone');
  });

  it(
    'refuses a reserved nickname and its look-alikes with NICKNAME_RESERVED: adm1n, ADMIN, a.d.m.i.n ' + 'for admin',
    async () => {
      const { a, operator, connect } = await setup();
      const admin = new NicknamePattern('admin');
      await operator.reserve('admin', (n) => admin.covers(n), null, BY);
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      for (const nickname of ['admin', 'adm1n', 'ADMIN', 'a.d.m.i.n', 'Adm_In']) {
        const client = await connect(a);
        const reply = await client.register(ed25519Identity(), nickname);
        expect(reply, nickname).toMatchObject({ type: 'error', code: 'NICKNAME_RESERVED' });
      }
      await registered(await connect(a), ed25519Identity(), 'admiral');
    },
  );

  it('lets only the key a nickname is reserved for register it, and ends a live holder with another key', async () => {
    const { a, b, operator, connect } = await setup();
    const squatter = ed25519Identity();
    const owner = ed25519Identity();
    const held = await connect(a);
    await registered(held, squatter, 'support-bot');
    const pattern = new NicknamePattern('support*');
    const started = Date.now();
    await operator.reserve('support*', (n) => pattern.covers(n), { keyId: keyIdOf(owner), label: null }, BY);
    expect((await held.closed).code).toBe(4003);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, started + 1_000 - Date.now())));
    expect(await (await connect(b)).register(ed25519Identity(), 'Support5')).toMatchObject({
      code: 'NICKNAME_RESERVED',
    });
    await registered(await connect(b), owner, 'support-bot');
  });

  it('records every action in the audit trail, and refuses to change it', async () => {
    const { operator } = await setup();
    const since = Date.now() - 1;
    await operator.block('key', 'a'.repeat(64), null, BY);
    await operator.unblock('key', 'a'.repeat(64), BY);
    const trail = await operator.audit(since);
    expect(trail.map((entry) => [entry.action, entry.actor, entry.reason, entry.note])).toEqual([
      ['block', 'test-operator', 'impersonation', 'ticket 42'],
      ['unblock', 'test-operator', 'impersonation', 'ticket 42'],
    ]);
    await expect(operator['session'].transaction((query) => query('DELETE FROM moderation_audit'))).rejects.toThrow(
      /append-only/,
    );
  });
}
