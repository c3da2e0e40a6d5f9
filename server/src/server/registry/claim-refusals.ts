/**
 * What the server says for the refusals and closes of protocol revision 2 (claims, address proof,
 * the store), kept beside refusals.ts's table.
 */
import { CloseCode, ErrorCode, RegistryError } from '../../protocol/errors.js';
import type { Closing, Refusal } from './refusals.js';

export const CLAIM_REFUSALS = {
  badAddressProof: {
    code: ErrorCode.BAD_ADDRESS_PROOF,
    message:
      'addressProof does not verify with the key of this address: sign the address payload with the onion ' +
      "service's key",
  },
  addressProofRequired: {
    code: ErrorCode.ADDRESS_PROOF_REQUIRED,
    message:
      'this registry requires an address proof: send addressProof, signed with the onion service key ' +
      '(hs_ed25519_secret_key)',
  },
  // Erratum 1: never until when. A claim lasts claimDays from its key's last registration, so
  // its end would tell anyone when that key was last online.
  nicknameClaimed: (nickname: string) =>
    ({ code: ErrorCode.NICKNAME_TAKEN, message: `nickname "${nickname}" is claimed by another key` }) satisfies Refusal,
  addressClaimed: { code: ErrorCode.ADDRESS_TAKEN, message: 'this onion address is claimed by another key' },
  addressVerifiedElsewhere: {
    code: ErrorCode.ADDRESS_TAKEN,
    message: 'this onion address was proven by another key: only a registration with an address proof can take it',
  },
} as const satisfies Record<string, Refusal | ((...args: never[]) => Refusal)>;

export const CLAIM_CLOSINGS = {
  evicted: { code: CloseCode.EVICTED, reason: 'address proven by its owner' },
} as const satisfies Record<string, Closing>;

/** The reason sent in `{"type":"evicted"}` (PROTOCOL.md "Address proof"). */
export const EVICTED_REASON = 'address proven by its owner';

/** UNAVAILABLE: the store cannot serve the request now; nothing was changed. */
export function unavailable(retryAfterMs: number): RegistryError {
  return new RegistryError(
    ErrorCode.UNAVAILABLE,
    'the registry cannot store claims right now; nothing was changed: retry after retryAfterMs',
    {
      retryAfterMs,
    },
  );
}
