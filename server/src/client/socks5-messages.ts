/**
 * The bytes of SOCKS5 (RFC 1928) and its username/password login (RFC 1929): the requests the
 * client sends, and the checks of each reply, as coded errors naming the proxy and the fix.
 */
import { ERROR_CATALOG, RegistryError, type SocksErrorCode } from '../protocol/errors.js';

export interface SocksProxy {
  readonly host: string;
  readonly port: number;
  /** RFC 1929 username, 1-255 bytes; with `password`, or neither. */
  readonly username?: string;
  /** RFC 1929 password, 1-255 bytes. */
  readonly password?: string;
}

export const VERSION = 0x05;
export const NO_AUTH = 0x00;
export const USERNAME_PASSWORD = 0x02;
/** RFC 1929's sub-negotiation version, and the status of success. */
const AUTH_VERSION = 0x01;
const AUTH_OK = 0x00;
/** RFC 1929's limit on a username and on a password. */
export const MAX_CREDENTIAL_BYTES = 255;
const NO_ACCEPTABLE_METHOD = 0xff;
const CMD_CONNECT = 0x01;
const ATYP_IPV4 = 0x01;
const ATYP_DOMAIN = 0x03;
const ATYP_IPV6 = 0x04;
const MAX_DOMAIN_BYTES = 255;
/** VER REP RSV ATYP and the first byte of BND.ADDR (a DOMAINNAME's length). */
export const REPLY_HEAD_BYTES = 5;

/**
 * Reply codes of RFC 1928 §6 and tor's extended codes (SocksPort ... ExtendedErrors), with what a
 * person can do about each. Tor answers 0x04 when it cannot reach an onion service at all.
 */
const REPLIES: ReadonlyMap<number, SocksErrorCode> = new Map([
  [0x01, 'SOCKS_GENERAL_FAILURE'],
  [0x02, 'SOCKS_NOT_ALLOWED'],
  [0x03, 'SOCKS_NETWORK_UNREACHABLE'],
  [0x04, 'SOCKS_HOST_UNREACHABLE'],
  [0x05, 'SOCKS_CONNECTION_REFUSED'],
  [0x06, 'SOCKS_TTL_EXPIRED'],
  [0x07, 'SOCKS_COMMAND_NOT_SUPPORTED'],
  [0x08, 'SOCKS_ADDRESS_TYPE_NOT_SUPPORTED'],
  [0xf0, 'SOCKS_ONION_DESCRIPTOR_NOT_FOUND'],
  [0xf1, 'SOCKS_ONION_DESCRIPTOR_INVALID'],
  [0xf2, 'SOCKS_ONION_INTRO_FAILED'],
  [0xf3, 'SOCKS_ONION_REND_FAILED'],
  [0xf4, 'SOCKS_ONION_AUTH_MISSING'],
  [0xf5, 'SOCKS_ONION_AUTH_WRONG'],
  [0xf6, 'SOCKS_ONION_BAD_ADDRESS'],
  [0xf7, 'SOCKS_ONION_INTRO_TIMEOUT'],
]);

export function describeProxy(proxy: SocksProxy): string {
  return proxy.host.includes(':') ? `[${proxy.host}]:${proxy.port}` : `${proxy.host}:${proxy.port}`;
}

/** The CONNECT request for `host:port` as a DOMAINNAME. */
export function connectRequest(host: string, port: number): Buffer {
  const name = Buffer.from(host, 'utf8');
  const request = Buffer.alloc(7 + name.length);
  request.set([VERSION, CMD_CONNECT, 0x00, ATYP_DOMAIN, name.length]);
  name.copy(request, 5);
  request.writeUInt16BE(port, 5 + name.length);
  return request;
}

/** Length of BND.ADDR for an address type, given the first byte after ATYP; undefined when unknown. */
function boundAddressLength(atyp: number, firstByte: number): number | undefined {
  if (atyp === ATYP_IPV4) return 4;
  if (atyp === ATYP_IPV6) return 16;
  if (atyp === ATYP_DOMAIN) return 1 + firstByte;
  return undefined;
}

/** Why the proxy cannot be asked for `host:port`; undefined when it can. */
export function destinationError(host: string, port: number): RegistryError | undefined {
  const hostBytes = Buffer.byteLength(host, 'utf8');
  if (hostBytes === 0 || hostBytes > MAX_DOMAIN_BYTES) {
    return new RegistryError('SOCKS_BAD_DESTINATION', `destination host must be 1-${MAX_DOMAIN_BYTES} bytes`);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    return new RegistryError('SOCKS_BAD_DESTINATION', `destination port must be 1-65535, got ${String(port)}`);
  }
  return undefined;
}

export interface Credentials {
  readonly username: Buffer;
  readonly password: Buffer;
}

/** The proxy's credentials as bytes (null: none), or why they cannot be sent. */
export function credentialsOf(proxy: SocksProxy): Credentials | null | RegistryError {
  if (proxy.username === undefined && proxy.password === undefined) return null;
  const username = Buffer.from(proxy.username ?? '', 'utf8');
  const password = Buffer.from(proxy.password ?? '', 'utf8');
  const fits = (bytes: Buffer): boolean => bytes.length >= 1 && bytes.length <= MAX_CREDENTIAL_BYTES;
  if (!fits(username) || !fits(password)) {
    return new RegistryError(
      'SOCKS_BAD_CREDENTIALS',
      `a SOCKS username and password go together, each 1-${MAX_CREDENTIAL_BYTES} bytes (got ${username.length} and ` +
        `${password.length})`,
    );
  }
  return { username, password };
}

/** SOCKS_BAD_CREDENTIALS when the proxy's username and password cannot be sent, else undefined. */
export function socksProxyError(proxy: SocksProxy): RegistryError | undefined {
  const credentials = credentialsOf(proxy);
  return credentials instanceof RegistryError ? credentials : undefined;
}

/** RFC 1929's request: version, the username and the password, each after its length. */
export function authRequest({ username, password }: Credentials): Buffer {
  return Buffer.concat([Buffer.of(AUTH_VERSION, username.length), username, Buffer.of(password.length), password]);
}

/** The proxy's method selection (2 bytes): undefined when it chose the one method offered, else why not. */
export function methodReplyError(reply: Buffer, where: string, offered: number): RegistryError | undefined {
  if (reply[0] !== VERSION) {
    return new RegistryError(
      'SOCKS_NOT_SOCKS5',
      `${where} is not a SOCKS5 proxy (it answered version byte ${String(reply[0])}): point --socks at tor's SocksPort`,
    );
  }
  if (reply[1] === NO_ACCEPTABLE_METHOD) {
    return offered === NO_AUTH
      ? new RegistryError(
          'SOCKS_AUTH_REQUIRED',
          `the proxy at ${where} requires a username and password: give them (--socks <user>:<password>@${where})`,
        )
      : new RegistryError(
          'SOCKS_AUTH_FAILED',
          `the proxy at ${where} takes no username and password: leave them out (--socks ${where})`,
        );
  }
  if (reply[1] !== offered) {
    return new RegistryError(
      'SOCKS_BAD_REPLY',
      `the proxy at ${where} chose method ${String(reply[1])}, which was not offered`,
    );
  }
  return undefined;
}

/** RFC 1929's answer (2 bytes): undefined when the proxy took the credentials, else why not. */
export function authReplyError(reply: Buffer, where: string): RegistryError | undefined {
  if (reply[0] !== AUTH_VERSION)
    return new RegistryError(
      'SOCKS_BAD_REPLY',
      `the proxy at ${where} answered the username and password with version byte ${String(reply[0])}`,
    );
  if (reply[1] !== AUTH_OK)
    return new RegistryError(
      'SOCKS_AUTH_FAILED',
      `the proxy at ${where} refused the SOCKS username and password (status ${String(reply[1])}): check them, or ` +
        `leave them out`,
    );
  return undefined;
}

/** The refusal a CONNECT reply code stands for, with what to do about it. */
function replyCodeError(rep: number, host: string, port: number): RegistryError {
  const known = REPLIES.get(rep);
  const hex = `0x${rep.toString(16).padStart(2, '0')}`;
  return known === undefined
    ? new RegistryError(
        'SOCKS_UNKNOWN_REPLY',
        `the proxy refused to connect to ${host}:${port} with reply code ${hex}`,
        { replyCode: rep },
      )
    : new RegistryError(known, `${ERROR_CATALOG[known].message} (${host}:${port}, SOCKS reply ${hex})`, {
        replyCode: rep,
      });
}

/**
 * The head of the CONNECT reply (REPLY_HEAD_BYTES): the bytes of it still to read (the rest of
 * BND.ADDR, then BND.PORT) when the proxy connected, else why it did not.
 */
export function connectReplyRest(head: Buffer, where: string, host: string, port: number): number | RegistryError {
  const [version, rep = 0, , atyp = 0, first = 0] = head;
  if (version !== VERSION)
    return new RegistryError(
      'SOCKS_BAD_REPLY',
      `the proxy at ${where} answered CONNECT with version byte ${String(version)}`,
    );
  if (rep !== 0x00) return replyCodeError(rep, host, port);
  const length = boundAddressLength(atyp, first);
  if (length === undefined)
    return new RegistryError(
      'SOCKS_BAD_REPLY',
      `the proxy at ${where} answered with unknown address type ${String(atyp)}`,
    );
  return length - 1 + 2;
}

/**
 * The client's side of the SOCKS5 handshake, one step per reply. Paused mode with read(n): exactly
 * the handshake's bytes are taken, what the destination sent after them stays for the caller.
 */
