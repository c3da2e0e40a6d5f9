/** The exact bytes a peer signs (PROTOCOL.md "register"); server and client build them here only. */

/** The text of the message a peer signs to prove it holds its key (values exactly as sent). */
export function registrationPayload(challenge: string, nickname: string, address: string, port: number): string {
  return `p2p-tor-chat/register/v1\n${challenge}\n${nickname}\n${address}\n${String(port)}`;
}
