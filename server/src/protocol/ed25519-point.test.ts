import { describe, expect, it } from 'vitest';
import { NOT_A_POINT, SMALL_ORDER_POINTS, realRawKey, withTorsion } from '../../../test/support/ed25519-torsion.js';
import { ed25519KeyProblem } from './ed25519-point.js';

describe('Ed25519 keys of the prime-order subgroup', () => {
  it('accepts a real key, again and again', () => {
    const key = realRawKey();
    expect(ed25519KeyProblem(key)).toBeNull();
    expect(ed25519KeyProblem(key)).toBeNull();
  });

  it('refuses small order, a torsion component and a non-point every time, never remembering one as good', () => {
    const torsion = withTorsion(realRawKey());
    for (let round = 0; round < 2; round += 1) {
      expect(ed25519KeyProblem(Buffer.from(SMALL_ORDER_POINTS['order 2 (0, -1)'] as string, 'hex'))).toContain(
        'small order',
      );
      expect(ed25519KeyProblem(torsion)).toContain('torsion component');
      expect(ed25519KeyProblem(Buffer.from(NOT_A_POINT, 'hex'))).toContain('not an Ed25519 point');
    }
  });

  it('refuses a y of p or more (a non-canonical encoding) and a key of the wrong length', () => {
    // y = p + 1 encodes the identity's y = 1 non-canonically.
    expect(
      ed25519KeyProblem(Buffer.from('eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', 'hex')),
    ).toContain('not an Ed25519 point');
    expect(ed25519KeyProblem(realRawKey().subarray(0, 31))).toContain('not an Ed25519 point');
  });
});
