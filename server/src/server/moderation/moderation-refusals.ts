/**
 * What the server says for revision 3's refusals and close (PROTOCOL.md "Moderation"), kept beside
 * refusals.ts's table. The operator's public reason is sent; the private note never is.
 */
import { CloseCode, ErrorCode } from '../../protocol/errors.js';
import type { Closing, Refusal } from '../registry/refusals.js';

function because(reason: string | null): string {
  return reason === null || reason === '' ? '' : ` (reason: ${reason})`;
}

export const MODERATION_REFUSALS = {
  blocked: (reason: string | null): Refusal => ({
    code: ErrorCode.BLOCKED,
    message:
      `the registry's operator blocked this key or onion address${because(reason)}: registering again will be ` +
      `refused the same way`,
  }),
  nicknameReserved: (nickname: string, reason: string | null): Refusal => ({
    code: ErrorCode.NICKNAME_RESERVED,
    message: `nickname "${nickname}" is reserved by the registry's operator${because(reason)}: choose another one`,
  }),
} as const;

export const MODERATION_CLOSINGS = {
  blocked: { code: CloseCode.BLOCKED, reason: "blocked by the registry's operator" },
} as const satisfies Record<string, Closing>;
