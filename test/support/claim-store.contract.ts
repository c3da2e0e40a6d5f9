/**
 * The contract every ClaimStore keeps (PROTOCOL.md revision 2, "Claims" and "Address proof"),
 * as vitest tests any implementation registers: `describeClaimStoreContract('sqlite', open)`.
 * `openStore` must return a store on an empty database each time; the contract closes it.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { onionAddressFromPublicKey } from '../../server/src/protocol/onion-address.js';
import {
  keyIdOf,
  MS_PER_DAY,
  type ClaimOutcome,
  type ClaimRequest,
  type ClaimStore,
  type OpenClaimStore,
} from '../../server/src/store/claim-store.js';
import type { RegistryError } from '../../server/src/protocol/errors.js';
import { isStoreError } from '../../server/src/store/store-error.js';

export const CLAIM_DAYS = 30;
const START = Date.UTC(2025, 0, 1);

/** A clock the test moves by hand. */
export class ManualClock {
  time: number;
  constructor(start: number = START) {
    this.time = start;
  }
  readonly now = (): number => this.time;
  advanceDays(days: number): void {
    this.time += days * MS_PER_DAY;
  }
}

export interface TestKey {
  readonly keyId: string;
  readonly publicKeyDer: Uint8Array;
}

export function newKey(): TestKey {
  const der = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' });
  return { keyId: keyIdOf(der), publicKeyDer: new Uint8Array(der) };
}

/** The address of a real onion key: random bytes would make a key of the wrong subgroup 7 times in 8. */
export function newAddress(): string {
  return onionAddressFromPublicKey(
    generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }).subarray(12),
  );
}

export function request(
  key: TestKey,
  nickname: string,
  address: string,
  extra: Partial<ClaimRequest> = {},
): ClaimRequest {
  return { keyId: key.keyId, publicKeyDer: key.publicKeyDer, nickname, address, addressVerified: false, ...extra };
}

function expectClaimed(outcome: ClaimOutcome): Extract<ClaimOutcome, { kind: 'claimed' }> {
  if (outcome.kind !== 'claimed') throw new Error(`expected a claim, got ${outcome.kind}`);
  return outcome;
}

/** The store error `promise` rejects with; anything else (or success) fails the test. */
export async function failureOf(promise: Promise<unknown>): Promise<RegistryError> {
  try {
    await promise;
  } catch (err) {
    if (isStoreError(err)) return err;
    throw err;
  }
  throw new Error('expected a RegistryError');
}

export function describeClaimStoreContract(name: string, openStore: OpenClaimStore): void {
  describe(`ClaimStore contract: ${name}`, () => {
    let store: ClaimStore | undefined;
    let clock: ManualClock;

    async function open(): Promise<ClaimStore> {
      clock = new ManualClock();
      store = await openStore({ now: clock.now, claimDays: CLAIM_DAYS });
      return store;
    }

    afterEach(async () => {
      await store?.close();
      store = undefined;
    });

    it('claims a free nickname and address for a key, until claimDays after now', async () => {
      const s = await open();
      const alice = newKey();
      const address = newAddress();
      const { claim, previous, displaced } = expectClaimed(await s.claim(request(alice, 'Alice', address)));
      expect(claim).toMatchObject({ keyId: alice.keyId, nickname: 'Alice', address, addressVerified: false });
      expect(Buffer.from(claim.publicKeyDer).equals(Buffer.from(alice.publicKeyDer))).toBe(true);
      expect(claim.claimedAt).toBe(clock.time);
      expect(claim.lastSeenAt).toBe(clock.time);
      expect(claim.expiresAt).toBe(clock.time + CLAIM_DAYS * MS_PER_DAY);
      expect(previous).toBeNull();
      expect(displaced).toBeNull();
      expect(await s.getByNickname('alice')).toEqual(claim);
    });

    it('finds the claims relevant to a registration by nickname in any case, by address and by key', async () => {
      const s = await open();
      const [alice, bob, carol] = [newKey(), newKey(), newKey()];
      const [aliceAddress, bobAddress] = [newAddress(), newAddress()];
      await s.claim(request(alice, 'Alice', aliceAddress));
      await s.claim(request(bob, 'bob', bobAddress));
      const found = await s.findForRegistration({ keyId: carol.keyId, nickname: 'ALICE', address: bobAddress });
      expect(found.byNickname?.keyId).toBe(alice.keyId);
      expect(found.byAddress?.keyId).toBe(bob.keyId);
      expect(found.byKey).toBeNull();
      const own = await s.findForRegistration({ keyId: alice.keyId, nickname: 'someone', address: newAddress() });
      expect(own).toMatchObject({ byNickname: null, byAddress: null, byKey: { nickname: 'Alice' } });
    });

    it('keeps the spelling of a nickname while its uniqueness ignores case', async () => {
      const s = await open();
      await s.claim(request(newKey(), 'MiXeD.Case-1', newAddress()));
      expect((await s.getByNickname('mixed.case-1'))?.nickname).toBe('MiXeD.Case-1');
      const other = await s.claim(request(newKey(), 'mixed.CASE-1', newAddress()));
      expect(other.kind).toBe('nickname-taken');
    });

    it("moves a key's claim to a new nickname at once, freeing the old one", async () => {
      const s = await open();
      const alice = newKey();
      const address = newAddress();
      const first = expectClaimed(await s.claim(request(alice, 'alice', address)));
      clock.advanceDays(1);
      const moved = expectClaimed(await s.claim(request(alice, 'alice2', address)));
      expect(moved.previous).toEqual(first.claim);
      expect(moved.claim.claimedAt).toBe(clock.time);
      expect(await s.getByNickname('alice')).toBeNull();
      expectClaimed(await s.claim(request(newKey(), 'alice', newAddress())));
    });

    it("moves a key's claim to a new address at once, freeing the old one", async () => {
      const s = await open();
      const alice = newKey();
      const [oldAddress, newAddr] = [newAddress(), newAddress()];
      await s.claim(request(alice, 'alice', oldAddress));
      const moved = expectClaimed(await s.claim(request(alice, 'alice', newAddr)));
      expect(moved.previous?.address).toBe(oldAddress);
      expect(moved.claim.address).toBe(newAddr);
      const found = await s.findForRegistration({ keyId: newKey().keyId, nickname: 'zed', address: oldAddress });
      expect(found.byAddress).toBeNull();
      expectClaimed(await s.claim(request(newKey(), 'bob', oldAddress)));
    });

    it('keeps claimedAt and extends the expiry when a key claims the same binding again', async () => {
      const s = await open();
      const alice = newKey();
      const address = newAddress();
      const first = expectClaimed(await s.claim(request(alice, 'alice', address)));
      clock.advanceDays(10);
      const again = expectClaimed(await s.claim(request(alice, 'Alice', address)));
      expect(again.previous).toEqual(first.claim);
      expect(again.claim.claimedAt).toBe(first.claim.claimedAt);
      expect(again.claim.nickname).toBe('Alice');
      expect(again.claim.expiresAt).toBe(clock.time + CLAIM_DAYS * MS_PER_DAY);
    });

    it("answers nickname-taken for another key's live claim, in any case, and changes nothing", async () => {
      const s = await open();
      const alice = newKey();
      const bob = newKey();
      const bobAddress = newAddress();
      const held = expectClaimed(await s.claim(request(alice, 'alice', newAddress())));
      await s.claim(request(bob, 'bob', bobAddress));
      const outcome = await s.claim(request(bob, 'ALICE', newAddress()));
      expect(outcome).toEqual({ kind: 'nickname-taken', holder: held.claim });
      expect((await s.getByNickname('bob'))?.address).toBe(bobAddress);
    });

    it("answers address-taken for another key's live claim on the address, and changes nothing", async () => {
      const s = await open();
      const address = newAddress();
      const held = expectClaimed(await s.claim(request(newKey(), 'alice', address)));
      const outcome = await s.claim(request(newKey(), 'bob', address));
      expect(outcome).toEqual({ kind: 'address-taken', holder: held.claim });
      expect(await s.getByNickname('bob')).toBeNull();
    });

    it('gives exactly one of two keys a nickname they claim at the same moment', async () => {
      const s = await open();
      const outcomes = await Promise.all([
        s.claim(request(newKey(), 'race', newAddress())),
        s.claim(request(newKey(), 'Race', newAddress())),
      ]);
      expect(outcomes.map((o) => o.kind).sort()).toEqual(['claimed', 'nickname-taken']);
    });

    it('gives exactly one of two keys an address they claim at the same moment', async () => {
      const s = await open();
      const address = newAddress();
      const outcomes = await Promise.all([
        s.claim(request(newKey(), 'one', address)),
        s.claim(request(newKey(), 'two', address)),
      ]);
      expect(outcomes.map((o) => o.kind).sort()).toEqual(['address-taken', 'claimed']);
    });

    it('ignores an expired claim in every read, and lets another key take its nickname and address', async () => {
      const s = await open();
      const alice = newKey();
      const address = newAddress();
      await s.claim(request(alice, 'alice', address));
      clock.advanceDays(CLAIM_DAYS);
      expect(await s.getByNickname('alice')).toBeNull();
      expect(await s.findForRegistration({ keyId: alice.keyId, nickname: 'alice', address })).toEqual({
        byNickname: null,
        byAddress: null,
        byKey: null,
      });
      expect((await s.list()).claims).toEqual([]);
      const bob = newKey();
      expect(expectClaimed(await s.claim(request(bob, 'alice', address))).claim.keyId).toBe(bob.keyId);
    });

    it('keeps a claim alive until the last millisecond before it expires', async () => {
      const s = await open();
      await s.claim(request(newKey(), 'alice', newAddress()));
      clock.time += CLAIM_DAYS * MS_PER_DAY - 1;
      expect(await s.getByNickname('alice')).not.toBeNull();
      expect((await s.claim(request(newKey(), 'alice', newAddress()))).kind).toBe('nickname-taken');
    });

    it('extends the expiry from now on touch, and does not revive an expired claim', async () => {
      const s = await open();
      const [alice, bob] = [newKey(), newKey()];
      await s.claim(request(alice, 'alice', newAddress()));
      clock.advanceDays(1);
      await s.claim(request(bob, 'bob', newAddress()));
      clock.advanceDays(CLAIM_DAYS - 1);
      expect(await s.touch([alice.keyId, bob.keyId, newKey().keyId])).toBe(1);
      const bobClaim = await s.getByNickname('bob');
      expect(bobClaim?.lastSeenAt).toBe(clock.time);
      expect(bobClaim?.expiresAt).toBe(clock.time + CLAIM_DAYS * MS_PER_DAY);
      expect(await s.getByNickname('alice')).toBeNull();
      clock.advanceDays(CLAIM_DAYS - 1);
      expect(await s.getByNickname('bob')).not.toBeNull();
    });

    it("releases a key's claim, freeing its nickname and address at once", async () => {
      const s = await open();
      const alice = newKey();
      const address = newAddress();
      const held = expectClaimed(await s.claim(request(alice, 'alice', address)));
      expect(await s.releaseKey(alice.keyId)).toEqual(held.claim);
      expect(await s.releaseKey(alice.keyId)).toBeNull();
      expect(await s.getByNickname('alice')).toBeNull();
      expectClaimed(await s.claim(request(newKey(), 'ALICE', address)));
    });

    it('releases a claim read earlier only while it is still exactly that claim', async () => {
      const s = await open();
      const squatter = newKey();
      const address = newAddress();
      const read = expectClaimed(await s.claim(request(squatter, 'squat', address))).claim;
      const proven = expectClaimed(await s.claim(request(squatter, 'squat', address, { addressVerified: true }))).claim;
      expect(await s.releaseClaim(read)).toBe(false);
      clock.time += 1;
      const moved = expectClaimed(await s.claim(request(squatter, 'squat', newAddress()))).claim;
      expect(await s.releaseClaim(proven)).toBe(false);
      expect((await s.list()).claims).toEqual([moved]);
      expect(await s.releaseClaim(moved)).toBe(true);
      expect((await s.list()).claims).toEqual([]);
    });

    it('releases the claim on a nickname whoever holds it, for operators', async () => {
      const s = await open();
      const alice = newKey();
      await s.claim(request(alice, 'Alice', newAddress()));
      expect((await s.releaseNickname('alice'))?.keyId).toBe(alice.keyId);
      expect(await s.releaseNickname('alice')).toBeNull();
      expect(
        (await s.findForRegistration({ keyId: alice.keyId, nickname: 'x', address: newAddress() })).byKey,
      ).toBeNull();
    });

    it('purges exactly the expired claims', async () => {
      const s = await open();
      await s.claim(request(newKey(), 'old1', newAddress()));
      await s.claim(request(newKey(), 'old2', newAddress()));
      clock.advanceDays(2);
      await s.claim(request(newKey(), 'young', newAddress()));
      clock.advanceDays(CLAIM_DAYS - 1);
      expect(await s.purgeExpired()).toBe(2);
      expect(await s.purgeExpired()).toBe(0);
      expect((await s.list()).claims.map((c) => c.nickname)).toEqual(['young']);
    });

    it('lets a verified claim displace an unverified claim of another key on the address, when asked', async () => {
      const s = await open();
      const [squatter, owner] = [newKey(), newKey()];
      const address = newAddress();
      const squat = expectClaimed(await s.claim(request(squatter, 'squatter', address)));
      const taken = expectClaimed(
        await s.claim(request(owner, 'owner', address, { addressVerified: true, displaceUnverified: true })),
      );
      expect(taken.displaced).toEqual(squat.claim);
      expect(taken.claim.addressVerified).toBe(true);
      expect(await s.getByNickname('squatter')).toBeNull();
    });

    it(
      'lets a verified claim displace an unverified claim of another key that holds both the address and the ' +
        'nickname (erratum 1)',
      async () => {
        const s = await open();
        const [squatter, owner] = [newKey(), newKey()];
        const address = newAddress();
        const squat = expectClaimed(await s.claim(request(squatter, 'alice', address)));
        expect((await s.claim(request(owner, 'ALICE', address, { addressVerified: true }))).kind).toBe(
          'nickname-taken',
        );
        const taken = expectClaimed(
          await s.claim(request(owner, 'ALICE', address, { addressVerified: true, displaceUnverified: true })),
        );
        expect(taken.displaced).toEqual(squat.claim);
        expect(await s.getByNickname('alice')).toMatchObject({
          keyId: owner.keyId,
          nickname: 'ALICE',
          addressVerified: true,
        });
        expect(
          (await s.findForRegistration({ keyId: squatter.keyId, nickname: 'x', address: newAddress() })).byKey,
        ).toBeNull();
        // Only a claim that holds the address loses the nickname: another holder of it keeps it.
        await s.claim(request(newKey(), 'bob', newAddress()));
        const address2 = newAddress();
        await s.claim(request(newKey(), 'sam', address2));
        expect(
          (await s.claim(request(newKey(), 'bob', address2, { addressVerified: true, displaceUnverified: true }))).kind,
        ).toBe('nickname-taken');
      },
    );

    it('never lets a claim displace a verified claim, nor an unverified claim displace anything', async () => {
      const s = await open();
      const address = newAddress();
      await s.claim(request(newKey(), 'owner', address, { addressVerified: true }));
      const verifiedToo = await s.claim(
        request(newKey(), 'other', address, { addressVerified: true, displaceUnverified: true }),
      );
      expect(verifiedToo.kind).toBe('address-taken');
      const unverified = await s.claim(request(newKey(), 'squatter', address, { displaceUnverified: true }));
      expect(unverified.kind).toBe('address-taken');

      const plain = newAddress();
      await s.claim(request(newKey(), 'first', plain));
      const notProven = await s.claim(request(newKey(), 'second', plain, { displaceUnverified: true }));
      expect(notProven.kind).toBe('address-taken');
    });

    it('does not displace an unverified claim unless asked to', async () => {
      const s = await open();
      const address = newAddress();
      await s.claim(request(newKey(), 'first', address));
      expect((await s.claim(request(newKey(), 'owner', address, { addressVerified: true }))).kind).toBe(
        'address-taken',
      );
    });

    it('keeps an address verified when its key registers it again without the proof', async () => {
      const s = await open();
      const alice = newKey();
      const address = newAddress();
      await s.claim(request(alice, 'alice', address, { addressVerified: true }));
      const again = expectClaimed(await s.claim(request(alice, 'alice-renamed', address)));
      expect(again.claim.addressVerified).toBe(true);
      const moved = expectClaimed(await s.claim(request(alice, 'alice-renamed', newAddress())));
      expect(moved.claim.addressVerified).toBe(false);
    });

    it(
      "reverts a claim whose registration was refused: the key's previous claim and a displaced one are put back as " +
        'they were',
      async () => {
        const s = await open();
        const [alice, squatter] = [newKey(), newKey()];
        const proven = newAddress();
        const before = expectClaimed(await s.claim(request(alice, 'alice', newAddress()))).claim;
        const squat = expectClaimed(await s.claim(request(squatter, 'squat', proven))).claim;
        clock.advanceDays(1);
        const moved = expectClaimed(
          await s.claim(request(alice, 'alice2', proven, { addressVerified: true, displaceUnverified: true })),
        );
        expect(moved.previous).toEqual(before);
        expect(await s.revert(moved.claim, [before, squat])).toBe(2);
        expect((await s.list()).claims).toEqual([before, squat]);
      },
    );

    it(
      'reverts nothing newer: a claim of the key made since stays, and a nickname taken since is ' + 'not put back',
      async () => {
        const s = await open();
        const [alice, bob] = [newKey(), newKey()];
        const before = expectClaimed(await s.claim(request(alice, 'alice', newAddress()))).claim;
        clock.time += 1;
        const moved = expectClaimed(await s.claim(request(alice, 'alice2', newAddress()))).claim;
        clock.time += 1;
        const since = expectClaimed(await s.claim(request(alice, 'alice3', newAddress()))).claim;
        expect(await s.revert(moved, [before])).toBe(0);
        expect(await s.getByNickname('alice3')).toEqual(since);
        expect(await s.getByNickname('alice')).toBeNull();
        const bobs = expectClaimed(await s.claim(request(bob, 'alice', newAddress()))).claim;
        expect(await s.revert(since, [before])).toBe(0);
        expect((await s.list()).claims).toEqual([bobs]);
      },
    );

    it('lists live claims in case-insensitive nickname order, a page at a time', async () => {
      const s = await open();
      for (const nickname of ['delta', 'Alpha', 'charlie', 'Bravo', 'echo'])
        await s.claim(request(newKey(), nickname, newAddress()));
      const first = await s.list({ limit: 2 });
      expect(first.claims.map((c) => c.nickname)).toEqual(['Alpha', 'Bravo']);
      expect(first.next).toBe('Bravo');
      const second = await s.list({ after: first.next ?? '', limit: 2 });
      expect(second.claims.map((c) => c.nickname)).toEqual(['charlie', 'delta']);
      const last = await s.list({ after: second.next ?? '', limit: 2 });
      expect(last).toEqual({ claims: [expect.objectContaining({ nickname: 'echo' })], next: null });
      expect((await s.list()).claims).toHaveLength(5);
    });

    it('refuses a key id that is not the hash of its key, and writes nothing', async () => {
      const s = await open();
      const alice = newKey();
      const forged = { ...request(alice, 'alice', newAddress()), publicKeyDer: newKey().publicKeyDer };
      await expect(s.claim(forged)).rejects.toSatisfy((err) => isStoreError(err, 'STORE_BAD_INPUT'));
      await expect(s.claim(request(alice, 'not valid!', newAddress()))).rejects.toSatisfy((err) =>
        isStoreError(err, 'STORE_BAD_INPUT'),
      );
      await expect(s.claim(request(alice, 'alice', 'Not-An-Onion'))).rejects.toSatisfy((err) =>
        isStoreError(err, 'STORE_BAD_INPUT'),
      );
      expect((await s.list()).claims).toEqual([]);
    });

    it('finishes the writes in flight on close, and refuses calls after it', async () => {
      const s = await open();
      const pending = s.claim(request(newKey(), 'late', newAddress()));
      await s.close();
      expect((await pending).kind).toBe('claimed');
      await expect(s.claim(request(newKey(), 'after', newAddress()))).rejects.toSatisfy((err) =>
        isStoreError(err, 'STORE_CLOSED'),
      );
      await expect(s.getByNickname('late')).rejects.toSatisfy((err) => isStoreError(err, 'STORE_CLOSED'));
      store = undefined;
    });
  });
}
