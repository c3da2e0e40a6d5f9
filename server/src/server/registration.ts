/**
 * The registration pipeline: cheap checks first, then the server's signature budget, the key, a
 * trial admission to the peer table, and last the signature check on the thread pool. Only a
 * verified registration enters the table; the connections it replaces are told and closed.
 */
import { RegistryError } from '../protocol/errors.js';
import { NICKNAME_PATTERN, type PeerRecord, type RegisterRequest, type RequestId } from '../protocol/messages.js';
import { parseOnionAddress } from '../protocol/onion-address.js';
import { decodeSignature, parsePeerKey, verifySignature } from '../protocol/peer-key.js';
import { registrationPayload } from '../protocol/signing.js';
import type { Budgets } from './budgets.js';
import type { Connection } from './connection.js';
import type { EventHub } from './event-hub.js';
import type { FairScheduler } from './fair-scheduler.js';
import { nicknameKey, type PeerEntry, type PeerTable } from './peer-table.js';
import { CLOSINGS, REFUSALS, refuse } from './refusals.js';

export class Registrar {
  constructor(
    private readonly peers: PeerTable<Connection>,
    private readonly hub: EventHub,
    private readonly budgets: Budgets,
    private readonly scheduler: FairScheduler<Connection>,
  ) {}

  /**
   * Starts `conn`'s registration; the reply follows once the signature is checked (its later frames
   * wait meanwhile). Throws the RegistryError to answer when a check fails before that.
   */
  register(conn: Connection, request: RegisterRequest): void {
    if (this.peers.registrationOf(conn) !== undefined) throw refuse(REFUSALS.alreadyRegistered);
    if (!NICKNAME_PATTERN.test(request.nickname)) throw refuse(REFUSALS.nicknameInvalid);
    const address = parseOnionAddress(request.address);
    if (!address.ok) throw refuse(REFUSALS.addressInvalid(address.reason));
    if (!Number.isInteger(request.port) || request.port < 1 || request.port > 65_535) throw refuse(REFUSALS.portInvalid);
    // Reading the key is most of the main thread's cost of a registration: the budget covers it.
    const retryAfterMs = this.budgets.takeSignatureCheck(conn);
    if (retryAfterMs > 0) throw refuse(REFUSALS.serverBusySignatures, retryAfterMs);
    const key = parsePeerKey(request.publicKey);
    const signature = decodeSignature(request.signature, key);
    const peer: PeerRecord = {
      nickname: request.nickname,
      address: address.address,
      port: request.port,
      publicKey: key.pem,
      keyType: key.type,
      registeredAt: new Date().toISOString(),
    };
    const entry: PeerEntry<Connection> = { owner: conn, peer, keyDer: key.der, json: JSON.stringify(peer) };
    this.peers.admit(entry);
    const payload = Buffer.from(registrationPayload(conn.challenge, request.nickname, request.address, request.port), 'utf8');
    this.scheduler.busy(conn);
    // Neither handler throws (each catches what it calls), so the promise this returns never rejects.
    void verifySignature(key, payload, signature).then(
      (valid) => this.settle(conn, request.id, entry, valid),
      (err: unknown) => this.fail(conn, request.id, err),
    );
  }

  /** Removes `conn`'s registration, if it has one, and tells subscribers; false when it had none. */
  withdraw(conn: Connection): boolean {
    const entry = this.peers.removeOwner(conn);
    if (entry === undefined) return false;
    this.hub.publish(conn, { type: 'peer_left', nickname: entry.peer.nickname });
    return true;
  }

  /** The signature check is done: completes the registration, then lets the held frames run. */
  private settle(conn: Connection, id: RequestId, entry: PeerEntry<Connection>, valid: boolean): void {
    try {
      if (!conn.closed && !conn.closing) this.complete(conn, id, entry, valid);
    } catch (err) {
      this.fail(conn, id, err);
      return;
    }
    this.release(conn);
  }

  /** A bug, not the peer's doing: answered as in dispatch rather than left an unhandled rejection. */
  private fail(conn: Connection, id: RequestId, err: unknown): void {
    conn.log.error({ err }, 'registration failed');
    try {
      conn.reply(id, refuse(REFUSALS.internal));
    } catch (again) {
      conn.log.error({ err: again }, 'registration failed, and so did its answer');
    }
    this.release(conn);
  }

  /** Runs the held frames; should that throw (a bug), the connection is dropped rather than wedged. */
  private release(conn: Connection): void {
    try {
      this.scheduler.release(conn);
    } catch (err) {
      conn.log.error({ err }, 'held frames failed after a registration: dropping the connection');
      conn.terminate();
    }
  }

  private complete(conn: Connection, id: RequestId, entry: PeerEntry<Connection>, valid: boolean): void {
    if (!valid) return conn.reply(id, refuse(REFUSALS.badSignature));
    let replaced: PeerEntry<Connection>[];
    try {
      replaced = this.peers.add(entry);
    } catch (err) {
      // The table changed while the signature was checked (a name taken, the table full).
      if (err instanceof RegistryError) return conn.reply(id, err);
      throw err;
    }
    conn.send({ type: 'registered', id, peer: entry.peer });
    for (const old of replaced) {
      old.owner.send({ type: 'replaced' });
      old.owner.close(CLOSINGS.replaced);
      if (nicknameKey(old.peer.nickname) !== nicknameKey(entry.peer.nickname)) {
        this.hub.publish(old.owner, { type: 'peer_left', nickname: old.peer.nickname });
      }
    }
    this.hub.publish(conn, { type: 'peer_joined', peer: entry.peer });
    conn.log.info({ replaced: replaced.length }, 'peer registered');
    conn.log.debug({ nickname: entry.peer.nickname, address: entry.peer.address }, 'peer registered (details)');
  }
}
