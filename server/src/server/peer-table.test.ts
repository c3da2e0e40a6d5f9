import { describe, expect, it } from 'vitest';
import type { PeerRecord } from '../protocol/messages.js';
import { PeerTable, type PeerEntry } from './peer-table.js';

function reg(owner: string, nickname: string, address = `${nickname.toLowerCase()}.onion`, key = owner): PeerEntry<string> {
  const peer: PeerRecord = { nickname, address, port: 1, publicKey: key, keyType: 'ed25519', registeredAt: '2026-01-01T00:00:00.000Z' };
  return { owner, peer, keyDer: Buffer.from(key), json: JSON.stringify(peer) };
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
    expect(table.list('b', 1)).toEqual({ entries: [expect.objectContaining({ peer: expect.objectContaining({ nickname: 'c' }) })], next: 'c' });
    expect(table.list('c', 5)).toEqual({ entries: [expect.objectContaining({ peer: expect.objectContaining({ nickname: 'e' }) })], next: null });
    expect(table.list('z', 5)).toEqual({ entries: [], next: null });
  });

  it('replaces the registrations of the same key that hold the nickname or the address', () => {
    const table = new PeerTable<string>(100);
    table.add(reg('conn1', 'alice', 'x.onion', 'K'));
    table.add(reg('conn2', 'other', 'y.onion', 'K'));
    const replaced = table.add(reg('conn3', 'ALICE', 'y.onion', 'K'));
    expect(replaced.map((r) => r.owner).sort()).toEqual(['conn1', 'conn2']);
    expect(table.size).toBe(1);
    expect(table.lookup('alice')?.peer.nickname).toBe('ALICE');
    expect(table.removeOwner('conn1')).toBeUndefined();
    expect(table.size).toBe(1);
  });

  it('does not count replaced registrations against the peer limit', () => {
    const table = new PeerTable<string>(1);
    table.add(reg('conn1', 'alice', 'x.onion', 'K'));
    expect(() => table.add(reg('conn2', 'bob', 'z.onion', 'J'))).toThrow('full');
    expect(table.add(reg('conn3', 'alice', 'x.onion', 'K'))).toHaveLength(1);
  });
});
