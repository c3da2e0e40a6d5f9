/**
 * Fresh SOCKS isolation labels. To tor, a SOCKS username and password are no secret but an
 * isolation label: with IsolateSOCKSAuth (on by default on every SocksPort), a stream that gives
 * credentials no stream has used before gets circuits of its own. connection-race.ts gives its
 * second attempt one, so that tor reaches the registry through other circuits than the first.
 */
import { randomBytes } from 'node:crypto';
import { MAX_CREDENTIAL_BYTES } from './socks5-messages.js';
import type { SocksProxy } from './socks5.js';

/** The username of a fresh label when the proxy was given none. */
const ISOLATION_USERNAME = 'p2p-registry';

/**
 * The proxy with credentials no stream has used before. The username keeps the configured one as
 * its prefix (cut between characters to fit), so the label still reads as this client's; both
 * parts are random beyond it. A proxy that checks logins (not tor) refuses such a label: see
 * connection-race.ts for what that costs.
 */
export function freshIsolation(proxy: SocksProxy): SocksProxy {
  const suffix = `+race-${randomBytes(8).toString('hex')}`;
  const room = MAX_CREDENTIAL_BYTES - Buffer.byteLength(suffix, 'utf8');
  let prefix = '';
  let prefixBytes = 0;
  for (const char of proxy.username ?? ISOLATION_USERNAME) {
    prefixBytes += Buffer.byteLength(char, 'utf8');
    if (prefixBytes > room) break;
    prefix += char;
  }
  return { ...proxy, username: `${prefix}${suffix}`, password: randomBytes(16).toString('hex') };
}
