/**
 * Per-connection registration challenges: 32 random bytes as base64url (43 characters).
 *
 * Every accepted connection needs one, and a call into OpenSSL's RNG costs several microseconds
 * whatever its size, so the bytes are drawn in blocks and handed out in order. Each byte is used
 * once and the block is refilled from the CSPRNG when spent; a challenge is no more predictable
 * than one from `randomBytes(32)`.
 */
import { randomFillSync } from 'node:crypto';

export const CHALLENGE_BYTES = 32;
const CHALLENGES_PER_BLOCK = 128;

export class ChallengeSource {
  private readonly block = Buffer.alloc(CHALLENGE_BYTES * CHALLENGES_PER_BLOCK);
  private offset = this.block.length;

  /** A fresh challenge, never handed out before. */
  next(): string {
    if (this.offset === this.block.length) {
      randomFillSync(this.block);
      this.offset = 0;
    }
    const start = this.offset;
    this.offset += CHALLENGE_BYTES;
    return this.block.toString('base64url', start, this.offset);
  }
}
