/**
 * The registration pipeline: cheap checks first, then the server's signature budget, the keys, a
 * trial admission to the peer table, and last the signature check (and the address proof) on the
 * thread pool. A verified registration then passes the claim store (claim-keeper.ts) before the
 * roster (roster.ts) makes it live; the connections it replaces or evicts are told and closed.
 */
import { decodeAddressProof, verifyAddressProof } from '../../protocol/address-proof.js';
import { RegistryError } from '../../protocol/errors.js';
import { NICKNAME_PATTERN, type PeerRecord, type RegisterRequest, type RequestId } from '../../protocol/messages.js';
import { checkOnionKey, decodeOnionAddress } from '../../protocol/onion-address.js';
import { isKnownGoodEd25519Key } from '../../protocol/ed25519-point.js';
import {
  checkPeerKeyPoint,
  decodeSignature,
  ed25519PointOf,
  peekPeerKey,
  readPeerKey,
  verifySignature,
} from '../../protocol/peer-key.js';
import { addressProofPayload, registrationPayload } from '../../protocol/signing.js';
import { keyIdOf } from '../../store/claim-store.js';
import type { Budgets } from '../scheduling/budgets.js';
import { claimInfo, type ClaimKeeper, type Prepared } from './claim-keeper.js';
import { CLAIM_REFUSALS } from './claim-refusals.js';
import type { PeerConnection } from '../connection/peer-connection.js';
import type { FairScheduler } from '../scheduling/fair-scheduler.js';
import type { PeerTable } from './peer-table.js';
import type { SummaryLine } from '../summary-line.js';
import { REFUSALS, refuse } from './refusals.js';
import type { RequestCounts } from '../../metrics/request-counts.js';
import type { LocalEntry, PeerOwner, Roster } from './roster.js';
import { type ModerationGate, NO_MODERATION } from '../moderation/moderation-watch.js';

/** Revision 2: the claim store's part of registration, and whether an address proof is required. */
export interface RegistrarClaims {
  readonly keeper: ClaimKeeper;
  readonly requireAddressProof: boolean;
}

export class Registrar {
  constructor(
    private readonly peers: PeerTable<PeerOwner>,
    private readonly roster: Roster,
    private readonly budgets: Budgets,
    private readonly scheduler: FairScheduler<PeerConnection>,
    private readonly claims: RegistrarClaims,
    private readonly summary: Pick<SummaryLine, 'registered'>,
    private readonly counts: RequestCounts,
    /** Revision 3: the operator's blocks and reservations. */
    private readonly moderation: ModerationGate = NO_MODERATION,
  ) {}

  /**
   * Starts `conn`'s registration; the reply follows once the signature is checked (its later frames
   * wait meanwhile). Throws the RegistryError to answer when a check fails before that.
   */
  register(conn: PeerConnection, request: RegisterRequest): void {
    if (this.peers.registrationOf(conn) !== undefined) throw refuse(REFUSALS.alreadyRegistered);
    if (!NICKNAME_PATTERN.test(request.nickname)) throw refuse(REFUSALS.nicknameInvalid);
    const decoded = decodeOnionAddress(request.address);
    if (!decoded.ok) throw refuse(REFUSALS.addressInvalid(decoded.reason));
    if (!Number.isInteger(request.port) || request.port < 1 || request.port > 65_535)
      throw refuse(REFUSALS.portInvalid);
    // Reading the key, and erratum 1's subgroup checks of points not checked lately, are most of
    // the main thread's cost of a registration: the budget covers them before any runs.
    const peeked = peekPeerKey(request.publicKey);
    const keyPoint = peeked.point;
    const retryAfterMs = this.budgets.takeRegistrationChecks(conn, uncheckedPoints(decoded.publicKey, keyPoint));
    if (retryAfterMs > 0) throw refuse(REFUSALS.serverBusySignatures, retryAfterMs);
    const address = checkOnionKey(decoded);
    if (!address.ok) throw refuse(REFUSALS.addressInvalid(address.reason));
    const key = readPeerKey(request.publicKey, peeked);
    // An Ed25519 key in another layout than the usual one showed its point only now.
    const lateRetryAfterMs =
      keyPoint === undefined ? this.budgets.takePointChecks(conn, uncheckedPoints(ed25519PointOf(key))) : 0;
    if (lateRetryAfterMs > 0) throw refuse(REFUSALS.serverBusySignatures, lateRetryAfterMs);
    checkPeerKeyPoint(key);
    const signature = decodeSignature(request.signature, key);
    // Revision 2: the address proof, charged to the same signature budget.
    if (request.addressProof === null && this.claims.requireAddressProof)
      throw refuse(CLAIM_REFUSALS.addressProofRequired);
    const proof = request.addressProof === null ? null : decodeAddressProof(request.addressProof);
    const proofRetryAfterMs = proof === null ? 0 : this.budgets.takeSignatureCheck(conn);
    if (proofRetryAfterMs > 0) throw refuse(REFUSALS.serverBusySignatures, proofRetryAfterMs);
    const peer: PeerRecord = {
      nickname: request.nickname,
      address: address.address,
      port: request.port,
      publicKey: key.pem,
      keyType: key.type,
      registeredAt: new Date().toISOString(),
      addressVerified: proof !== null,
    };
    const entry: LocalEntry = {
      owner: conn,
      peer,
      keyDer: key.der,
      keyId: keyIdOf(key.der),
      json: JSON.stringify(peer),
    };
    this.peers.admit(entry);
    const payload = Buffer.from(
      registrationPayload(conn.challenge, request.nickname, request.address, request.port),
      'utf8',
    );
    const proofPayload = Buffer.from(addressProofPayload(conn.challenge, request.address, key.der), 'utf8');
    this.scheduler.busy(conn);
    // Neither handler throws (each catches what it calls), so the promise this returns never rejects.
    void Promise.all([
      verifySignature(key, payload, signature),
      proof === null || verifyAddressProof(address.publicKey, proofPayload, proof),
    ]).then(
      ([valid, proven]) => this.settle(conn, request.id, entry, valid, proven),
      (err: unknown) => this.fail(conn, request.id, err),
    );
  }

  /**
   * Revision 2, `unregister` with `release`: the key's claim is deleted first, then the registration
   * withdrawn; when the store cannot be written the answer is UNAVAILABLE and both stay.
   */
  release(conn: PeerConnection, id: RequestId): void {
    const entry = this.peers.registrationOf(conn);
    if (entry === undefined) throw refuse(REFUSALS.notRegistered);
    this.scheduler.busy(conn);
    this.answer(
      conn,
      id,
      this.claims.keeper.release(entry as LocalEntry).then(() => this.roster.leave(conn)),
    );
  }

  /** `unregister`: the registration ends (a cluster's database first), then the answer. */
  unregister(conn: PeerConnection, id: RequestId): void {
    const done = this.roster.leave(conn);
    if (done === null) throw refuse(REFUSALS.notRegistered);
    this.scheduler.busy(conn);
    this.answer(conn, id, done);
  }

  /** Removes `conn`'s registration, if it has one, and tells subscribers (its connection closed). */
  withdraw(conn: PeerConnection): void {
    // A closed connection's leave is retried by the roster until it is written: nothing to answer.
    this.roster
      .leave(conn)
      ?.catch((err: unknown) => conn.log.error({ err }, 'the registration of a closed connection could not be ended'));
  }

  /** `unregistered` once `done` resolves, its RegistryError if it rejects; then the held frames. */
  private answer(conn: PeerConnection, id: RequestId, done: Promise<unknown>): void {
    done
      .then(
        () => conn.send({ type: 'unregistered', id }),
        (err: unknown) => {
          if (!(err instanceof RegistryError)) throw err;
          conn.reply(id, err);
        },
      )
      // Neither handler throws (resumeHeld and fail catch what they call): no unhandled rejection.
      .then(
        () => this.resumeHeld(conn),
        (err: unknown) => this.fail(conn, id, err),
      );
  }

  /** The checks are done: completes the registration, then lets the held frames run. */
  private async settle(
    conn: PeerConnection,
    id: RequestId,
    entry: LocalEntry,
    valid: boolean,
    proven: boolean,
  ): Promise<void> {
    try {
      if (!conn.closed && !conn.closing) await this.complete(conn, id, entry, valid, proven);
    } catch (err) {
      this.counts.registrationRefused('INTERNAL', conn.requestStartedAt);
      this.fail(conn, id, err);
      return;
    }
    this.resumeHeld(conn);
  }

  /** A bug, not the peer's doing: answered as in dispatch rather than left an unhandled rejection. */
  private fail(conn: PeerConnection, id: RequestId, err: unknown): void {
    conn.log.error({ err }, 'registration failed');
    try {
      conn.reply(id, refuse(REFUSALS.internal));
    } catch (again) {
      conn.log.error({ err: again }, 'registration failed, and so did its answer');
    }
    this.resumeHeld(conn);
  }

  /** Runs the held frames; should that throw (a bug), the connection is dropped rather than wedged. */
  private resumeHeld(conn: PeerConnection): void {
    try {
      this.scheduler.release(conn);
    } catch (err) {
      conn.log.error({ err }, 'held frames failed after a registration: dropping the connection');
      conn.terminate();
    }
  }

  /** A registration refused after its checks began: counted, then answered. */
  private refuse(conn: PeerConnection, id: RequestId, err: RegistryError): void {
    this.counts.registrationRefused(err.code, conn.requestStartedAt);
    conn.reply(id, err);
  }

  private async complete(
    conn: PeerConnection,
    id: RequestId,
    entry: LocalEntry,
    valid: boolean,
    proven: boolean,
  ): Promise<void> {
    if (!valid) return this.refuse(conn, id, refuse(REFUSALS.badSignature));
    if (!proven) return this.refuse(conn, id, refuse(CLAIM_REFUSALS.badAddressProof));
    // Revision 3, after the signature: only the key's holder learns that it is blocked.
    const moderated = this.moderation.refusal(entry);
    if (moderated !== null) return this.refuse(conn, id, refuse(moderated));
    let prepared: Prepared | null = null;
    try {
      // The table may have changed while the signature was checked (a name taken, the table full);
      // checked again before the store is written, and once more by the roster.
      this.peers.admit(entry);
      prepared = await this.claims.keeper.prepare(entry);
      // A registration that does not happen changes nothing, the claims included.
      if (conn.closed || conn.closing) return await this.claims.keeper.abandon(prepared);
      const held = prepared.held;
      await this.roster.enter(entry, (replaced) => this.claims.keeper.entered(entry, held, replaced));
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
      if (prepared !== null) await this.claims.keeper.abandon(prepared);
      return this.refuse(conn, id, err);
    }
    await this.claims.keeper.completed(prepared);
    const claim = prepared.held;
    conn.send({ type: 'registered', id, peer: entry.peer, claim: claim === null ? null : claimInfo(claim) });
    // Counted for the summary line: a line each at info would make a reconnect storm a flood of lines.
    this.summary.registered();
    this.counts.registration(conn.requestStartedAt);
    conn.log.debug({ nickname: entry.peer.nickname, address: entry.peer.address }, 'peer registered');
    // A decision applied while this registration was being stored did not see it: it ends now.
    this.moderation.enforceIfHit(entry);
  }
}

/** How many of these Ed25519 points (absent ones aside) were not found good lately: each needs a check. */
function uncheckedPoints(...points: ReadonlyArray<Uint8Array | null | undefined>): number {
  return points.filter((point) => point !== null && point !== undefined && !isKnownGoodEd25519Key(point)).length;
}
