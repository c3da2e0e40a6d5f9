/**
 * The open connections: what happens when one opens (hello, idle timer, its socket's events, its
 * place in the pending line) and when it closes (its peer leaves, its subscription ends, its
 * refusals are counted), and how many have sent no valid request yet (MaxPendingConnections).
 * Per-connection log lines are debug: a flood must not become a flood of lines.
 */
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { CloseCode } from '../../protocol/errors.js';
import type { HelloLimits } from '../../protocol/messages.js';
import type { OnionAddress } from '../../protocol/onion-address.js';
import type { Budgets } from '../scheduling/budgets.js';
import { ChallengeSource } from './challenges.js';
import type { RegistryLimits } from '../config/config.js';
import { PeerConnection, ConnectionLog } from './peer-connection.js';
import type { EventHub } from '../registry/event-hub.js';
import type { FairScheduler } from '../scheduling/fair-scheduler.js';
import { watchPongs } from './heartbeats.js';
import { helloMessage } from './hello.js';
import type { Logger } from '../logger.js';
import type { OutputBudget } from './output-budget.js';
import type { PendingLine } from './pending-line.js';
import type { SummaryLine } from '../summary-line.js';
import type { Registrar } from '../registry/registration.js';
import { CLOSINGS, closingName, type Closing, type ClosingName } from '../registry/refusals.js';

/** The limits Connection reads: its slice of the configuration. */
export type ConnectionLimits = Pick<RegistryLimits, 'idleTimeoutSeconds' | 'maxBufferedBytes'>;

/** Closes that refused nobody: not counted in the refusal summary. */
const NOT_REFUSALS: ReadonlySet<ClosingName | 'other'> = new Set([
  'shutdown',
  'replaced',
  'leaseLost',
  'registrationLost',
]);

export interface OpenConnectionsOptions {
  readonly limits: ConnectionLimits;
  readonly logger: Logger;
  readonly budgets: Budgets;
  readonly scheduler: FairScheduler<PeerConnection>;
  readonly hub: EventHub;
  readonly registrar: Registrar;
  readonly output: OutputBudget;
  /** Shared with HTTP admission: the socket of a new connection is in it already. */
  readonly pendingLine: PendingLine;
  readonly refusals: SummaryLine;
  /** The registry's own onion address, for the hello (null while unknown). */
  readonly onion: () => OnionAddress | null;
  /** The limits every hello states (hello.ts). */
  readonly helloLimits: HelloLimits;
}

export class OpenConnections implements Iterable<PeerConnection> {
  /** Open connections that have sent no valid request yet. */
  pending = 0;
  private readonly open = new Set<PeerConnection>();
  private readonly challenges = new ChallengeSource();
  private nextId = 1;

  constructor(private readonly options: OpenConnectionsOptions) {}

  get size(): number {
    return this.open.size;
  }

  /** The open connections (the metrics count a cluster instance's own registrations from them). */
  values(): IterableIterator<PeerConnection> {
    return this.open.values();
  }

  [Symbol.iterator](): IterableIterator<PeerConnection> {
    return this.open.values();
  }

  /** Takes a connection whose upgrade was admitted: greets it and listens to its socket. */
  accept(ws: WebSocket, socket: Duplex): void {
    const { limits, logger, budgets, scheduler } = this.options;
    const id = this.nextId++;
    const challenge = this.challenges.next();
    const conn = new PeerConnection(
      id,
      ws,
      socket,
      challenge,
      budgets.connectionBucket(),
      new ConnectionLog(logger, id),
      limits.maxBufferedBytes,
      this.options.output,
    );
    this.open.add(conn);
    this.pending += 1;
    conn.idleTimer = setTimeout(() => conn.close(CLOSINGS.idle), limits.idleTimeoutSeconds * 1000);
    this.options.pendingLine.update(socket, () => conn.close(CLOSINGS.pendingEvicted));
    conn.log.debug({ connections: this.open.size }, 'connection opened');

    ws.on('error', (err: Error & { code?: string }) => {
      // ws closes the socket itself with the matching close code (1009 too big, 1002 protocol).
      conn.log.debug({ code: err.code }, 'connection error');
      this.options.refusals.count('closed', err.code ?? 'wsError');
    });
    watchPongs(conn);
    // Output also shrinks when the socket drains, and grows by the pongs ws sends on its own.
    socket.on('drain', () => conn.checkBuffered());
    ws.on('ping', () => conn.checkBuffered());
    ws.on('message', (data, isBinary) => scheduler.offer(conn, data, isBinary));
    ws.on('close', (code) => this.onClose(conn, code));
    conn.send(helloMessage(challenge, this.options.onion(), this.options.helloLimits));
  }

  /** The connection sent its first valid request: it no longer counts as pending. */
  markActive(conn: PeerConnection): void {
    if (!conn.pending) return;
    conn.pending = false;
    this.pending -= 1;
    this.options.pendingLine.leave(conn.socket);
    clearTimeout(conn.idleTimer);
    conn.idleTimer = undefined;
  }

  closeAll(closing: Closing): void {
    for (const conn of this.open) conn.close(closing);
  }

  terminateAll(): void {
    for (const conn of this.open) conn.terminate();
  }

  private onClose(conn: PeerConnection, code: number): void {
    if (!this.open.delete(conn)) return;
    conn.closed = true;
    if (conn.pending) this.pending -= 1;
    this.options.pendingLine.leave(conn.socket);
    clearTimeout(conn.idleTimer);
    this.options.output.release(conn);
    this.options.hub.unsubscribe(conn);
    this.options.registrar.withdraw(conn);
    const { refusals } = this.options;
    refusals.closed(code);
    // The refusal summary counts closes that refused someone; a replacement, an eviction (4002),
    // a shutdown and a cluster instance's lost lease refused nobody.
    const closedBy =
      conn.closedBy === undefined || conn.closedBy.code === CloseCode.EVICTED ? undefined : closingName(conn.closedBy);
    if (closedBy !== undefined && !NOT_REFUSALS.has(closedBy)) refusals.count('closed', closedBy);
    refusals.countRequests(conn.refused);
    conn.log.debug({ closeCode: code, connections: this.open.size, refused: conn.refused }, 'connection closed');
  }
}
