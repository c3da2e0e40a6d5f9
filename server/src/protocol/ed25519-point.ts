/**
 * Whether 32 bytes are an Ed25519 public key of the prime-order subgroup (PROTOCOL.md erratum 1):
 * tor refuses an onion address whose key is not, and a key of small order, or with a torsion
 * component, lets signatures verify for more than one message or key. Shared by the onion address
 * and the peer key checks.
 */
import { ed25519 } from '@noble/curves/ed25519.js';

/**
 * Keys found good lately. The check is a scalar multiplication in BigInt arithmetic (about a
 * millisecond), and most registrations are of keys and addresses seen before (reconnects, replaced
 * connections): a memo of this pure function, bounded, oldest forgotten first.
 */
const RECENTLY_GOOD_LIMIT = 4_096;
const recentlyGood = new Set<string>();

function remember(key: string): void {
  if (recentlyGood.size >= RECENTLY_GOOD_LIMIT) recentlyGood.delete(recentlyGood.values().next().value as string);
  recentlyGood.add(key);
}

function memoKey(raw: Uint8Array): string {
  return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1');
}

/** Whether `raw` was found good lately: its check costs nothing now. */
export function isKnownGoodEd25519Key(raw: Uint8Array): boolean {
  return recentlyGood.has(memoKey(raw));
}

/**
 * Why `raw` is refused as an Ed25519 public key, or null when it is a point of the prime-order
 * subgroup other than the identity. A key not seen lately costs about a millisecond of the calling
 * thread: callers that parse untrusted input charge it to a budget.
 */
export function ed25519KeyProblem(raw: Uint8Array): string | null {
  const key = memoKey(raw);
  if (recentlyGood.has(key)) return null;
  let point: InstanceType<typeof ed25519.Point>;
  try {
    // Strict RFC 8032 decoding: a y of p or more, or an x of 0 with its sign bit set, is refused.
    point = ed25519.Point.fromBytes(raw, false);
  } catch {
    return 'its 32 bytes are not an Ed25519 point';
  }
  if (point.isSmallOrder()) return 'it is a point of small order';
  if (!point.isTorsionFree()) return 'it is a point with a torsion component (not of the prime-order subgroup)';
  remember(key);
  return null;
}
