import { describe, expect, it } from 'vitest';
import { freshIsolation } from './socks-isolation.js';
import { socksProxyError } from './socks5-messages.js';

describe('freshIsolation', () => {
  it('makes a new label each time: the configured username with a random suffix, and a random password', () => {
    const proxy = { host: '127.0.0.1', port: 9050, username: 'registry', password: 'x' };
    const [one, two] = [freshIsolation(proxy), freshIsolation(proxy)];
    expect(one).toMatchObject({
      host: '127.0.0.1',
      port: 9050,
      username: expect.stringMatching(/^registry\+race-[0-9a-f]{16}$/),
    });
    expect(one.password).not.toBe('x');
    expect(two.username).not.toBe(one.username);
    expect(two.password).not.toBe(one.password);
    expect(freshIsolation({ host: '127.0.0.1', port: 9050 }).username).toMatch(/^p2p-registry\+race-/);
  });

  it('cuts a long configured username, between characters, so the label still fits in 255 bytes', () => {
    const label = freshIsolation({ host: '127.0.0.1', port: 9050, username: 'ü'.repeat(127), password: 'x' });
    expect(Buffer.byteLength(label.username ?? '', 'utf8')).toBeLessThanOrEqual(255);
    expect(label.username).toMatch(/^ü+\+race-[0-9a-f]{16}$/);
    expect(socksProxyError(label)).toBeUndefined();
  });
});
