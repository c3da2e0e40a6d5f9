import { describe, expect, it } from 'vitest';
import { CHALLENGE_BYTES, ChallengeSource } from './challenges.js';

describe('ChallengeSource', () => {
  it('hands out 32 random bytes as 43 base64url characters', () => {
    const challenge = new ChallengeSource().next();
    expect(challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(challenge, 'base64url')).toHaveLength(CHALLENGE_BYTES);
  });

  it('never repeats a challenge across block refills', () => {
    const source = new ChallengeSource();
    const seen = new Set<string>();
    for (let i = 0; i < 1_000; i += 1) seen.add(source.next());
    expect(seen.size).toBe(1_000);
  });

  it('does not share its bytes with another source', () => {
    const a = new ChallengeSource();
    const b = new ChallengeSource();
    expect(a.next()).not.toBe(b.next());
  });
});
