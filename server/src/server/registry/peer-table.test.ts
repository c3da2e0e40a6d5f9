import { describe, expect, it } from 'vitest';
import type { PeerRecord } from '../../protocol/messages.js';
import { PeerTable, type PeerEntry } from './peer-table.js';

function reg(
  owner: string,
  nickname: string,
  address = `${nickname.toLowerCase()}.onion`,
  key = owner,
  addressVerified = false,
): PeerEntry<string> {
  const peer: PeerRecord = {
    nickname,
    address,
    port: 1,
    publicKey: key,
    keyType: 'ed25519',
    registeredAt: '2026-01-01T00:00:00.000Z',
    addressVerified,
  };
  return { owner, peer, keyDer: Buffer.from(key), keyId: key, json: JSON.stringify(peer) };
}

describe('peer table', () => {
  it('keeps the list in case-insensitive order through adds and removes', () => {
    const table = new PeerTable<string>(100);
    for (const name of ['b', 'D', 'a', 'C']) table.add(reg(name, name));
    table.removeOwner('a');
    expect(table.list(null, 10).entries.map((e) => e.peer.nickname)).toEqual(['b', 'C', 'D']);
    expect(table.size).toBe(3);
  });

  it('pages with an exclusive after that need not be a registered name', () => {
    const table = new PeerTable<string>(100);
    for (const name of ['a', 'c', 'e']) table.add(reg(name, name));
    expect(table.list('b', 1)).toEqual({
      entries: [expect.objectContaining({ peer: expect.objectContaining({ nickname: 'c' }) })],
      next: 'c',
    });
    expect(table.list('c', 5)).toEqual({
      entries: [expect.objectContaining({ peer: expect.objectContaining({ nickname: 'e' }) })],
      next: null,
    });
    expect(table.list('z', 5)).toEqual({ entries: [], next: null });
  });

  it(
    'keeps one live registration per key: the same key replaces its registration whatever its nickname ' +
      'and address',
    () => {
      const table = new PeerTable<string>(100);
      table.add(reg('conn1', 'alice', 'x.onion', 'K'));
      expect(table.add(reg('conn2', 'other', 'y.onion', 'K')).map((r) => r.owner)).toEqual(['conn1']);
      const replaced = table.add(reg('conn3', 'ALICE', 'z.onion', 'K'));
      expect(replaced.map((r) => r.owner)).toEqual(['conn2']);
      expect(table.size).toBe(1);
      expect(table.lookup('alice')?.peer.nickname).toBe('ALICE');
      expect(table.lookup('other')).toBeUndefined();
      expect(table.removeOwner('conn1')).toBeUndefined();
      expect(table.size).toBe(1);
    },
  );

  it(
    'lets a proven address take the address from an unverified holder with another key, never from a ' + 'verified one',
    () => {
      const table = new PeerTable<string>(100);
      table.add(reg('squatter', 'sam', 'x.onion', 'S'));
      expect(() => table.add(reg('owner', 'olga', 'x.onion', 'O'))).toThrow('address');
      expect(table.add(reg('owner', 'olga', 'x.onion', 'O', true)).map((r) => r.owner)).toEqual(['squatter']);
      expect(table.lookup('sam')).toBeUndefined();
      expect(() => table.add(reg('other', 'otto', 'x.onion', 'T', true))).toThrow('address');
      expect(() => table.add(reg('other', 'otto', 'x.onion', 'T'))).toThrow('address');
    },
  );

  it(
    'lets a proven address take the nickname too from an unverified holder of both, but not from another holder of ' +
      'the nickname (erratum 1)',
    () => {
      const table = new PeerTable<string>(100);
      table.add(reg('squatter', 'alice', 'x.onion', 'S'));
      expect(() => table.add(reg('owner', 'alice', 'x.onion', 'O'))).toThrow('nickname');
      expect(table.add(reg('owner', 'alice', 'x.onion', 'O', true)).map((r) => r.owner)).toEqual(['squatter']);
      expect(table.lookup('alice')?.owner).toBe('owner');
      table.add(reg('bob', 'bob', 'b.onion', 'B'));
      table.add(reg('squatter2', 'sam', 'y.onion', 'S2'));
      expect(() => table.add(reg('owner2', 'bob', 'y.onion', 'O2', true))).toThrow('nickname');
    },
  );

  it('does not count replaced registrations against the peer limit', () => {
    const table = new PeerTable<string>(1);
    table.add(reg('conn1', 'alice', 'x.onion', 'K'));
    expect(() => table.add(reg('conn2', 'bob', 'z.onion', 'J'))).toThrow('full');
    expect(table.add(reg('conn3', 'alice', 'x.onion', 'K'))).toHaveLength(1);
  });
});
