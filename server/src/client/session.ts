/**
 * What the client does over its current connection, on the shared ClientContext: open it, send
 * requests and the signed registration, route what arrives, forget it when it closes, and shut the
 * client down for good.
 */
import { RegistryError } from '../protocol/errors.js';
import { parseOnionAddress } from '../protocol/onion-address.js';
import { expectRegistered, readEvent, type Frame, type Hello } from '../protocol/reply-parser.js';
import { signAddressProof } from './address-proof.js';
import type { ClientContext, Registration } from './client-context.js';
import type { RegisteredPeer } from './event-types.js';
import type { OnionKey } from './onion-key.js';
import { emitRegistryEvent } from './events.js';
import type { RequestBody } from './requests.js';
import { ConnectionRace } from './connection-race.js';
import type { RegistryConnection, ConnectionHandlers } from './transport.js';

/** Opens a new connection, racing a slow one (connection-race.ts), and makes the winner the current one. */
export async function openConnection(ctx: ClientContext, handlers: ConnectionHandlers): Promise<Hello> {
  const race = new ConnectionRace(ctx.settings, handlers, (winner) => {
    ctx.connection = winner;
  });
  ctx.race = race;
  try {
    const winner = await race.won;
    return await winner.ready;
  } catch (err) {
    if (ctx.state === 'closed') throw new RegistryError('CLOSED', 'the client was closed while connecting');
    throw err;
  } finally {
    if (ctx.race === race) ctx.race = null;
  }
}

export function notConnected(ctx: ClientContext): RegistryError {
  const { state } = ctx;
  const why =
    state === 'reconnecting'
      ? 'reconnecting: retry after the "reconnected" event'
      : `state ${state}: call connect() first`;
  return new RegistryError(state === 'closed' ? 'CLOSED' : 'NOT_CONNECTED', `not connected to the registry (${why})`);
}

/** Sends a request on the current connection; resolves with the reply of type `expect`. */
export function request(ctx: ClientContext, type: string, body: RequestBody, expect: string): Promise<Frame> {
  const connection = ctx.connection;
  if (connection === null || !connection.isOpen) return Promise.reject(notConnected(ctx));
  return ctx.requests.send(connection, type, body, expect);
}

/**
 * ONION_KEY_MISMATCH when the onion key is not the key of `address` (a malformed address is the registry's to refuse).
 */
function checkOnionKey(onionKey: OnionKey, address: string): void {
  const parsed = parseOnionAddress(address);
  if (parsed.ok && parsed.address !== onionKey.address) {
    throw new RegistryError(
      'ONION_KEY_MISMATCH',
      `the onion service key is the key of ${onionKey.address}, not of ${parsed.address}: pass the ` +
        `hs_ed25519_secret_key of the onion service at that address, or register its own address`,
    );
  }
}

/**
 * Registers on the current connection, signing its challenge with the identity, and (rev 2) adding
 * an address proof when the registration has an onion key.
 */
export async function sendRegister(ctx: ClientContext, registration: Registration): Promise<RegisteredPeer> {
  const identity = ctx.settings.identity;
  if (identity === undefined) {
    throw new RegistryError('NO_IDENTITY', 'register needs an identity: pass `identity` (see loadOrCreateIdentity)');
  }
  const hello = ctx.connection?.hello ?? null;
  if (hello === null) throw notConnected(ctx);
  const { nickname, address, port, onionKey } = registration;
  const body: RequestBody = {
    nickname,
    address,
    port,
    publicKey: identity.publicKeyPem,
    signature: identity.sign(hello.challenge, nickname, address, port),
  };
  if (onionKey !== undefined) {
    checkOnionKey(onionKey, address);
    // A rev-1 registry ignores the field; the peer is then not addressVerified.
    body.addressProof = signAddressProof(onionKey, hello.challenge, address, identity.publicKeyPem);
  }
  const { peer, claim } = expectRegistered(await request(ctx, 'register', body, 'registered'));
  ctx.peer = { ...peer, claim };
  return ctx.peer;
}

/** A frame after the hello: the reply to a request, or else an event (or nothing this client knows). */
export function routeFrame(ctx: ClientContext, frame: Frame): void {
  if (ctx.requests.settle(frame)) return;
  const event = readEvent(frame);
  if (event !== undefined) emitRegistryEvent(ctx, event);
}

/**
 * Forgets a greeted connection that closed, failing its requests. False when it was no longer the
 * current one (nothing to do).
 */
export function forgetConnection(ctx: ClientContext, connection: RegistryConnection, code: number): boolean {
  if (ctx.connection !== connection) return false;
  ctx.connection = null;
  ctx.peer = null;
  ctx.requests.rejectAll(
    new RegistryError('CONNECTION_CLOSED', `the connection to the registry closed (code ${code}) before the reply`),
  );
  return true;
}

/** Closes the client for good: no more reconnecting, requests fail with `error` (CLOSED when null). */
export async function shutdown(ctx: ClientContext, error: RegistryError | null): Promise<void> {
  if (ctx.state === 'closed') return;
  ctx.state = 'closed';
  clearTimeout(ctx.reconnect.timer);
  ctx.reconnect.timer = undefined;
  const connection = ctx.connection;
  ctx.requests.rejectAll(error ?? new RegistryError('CLOSED', 'the client was closed'));
  await Promise.all([connection?.close(), ctx.race?.close()]);
  ctx.connection = null;
  ctx.peer = null;
  ctx.events.emit('closed', error);
}
