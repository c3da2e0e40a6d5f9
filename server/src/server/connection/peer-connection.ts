/** One WebSocket connection: its state, how frames are sent to it, and how it is closed. */
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { ERROR_CATALOG, ErrorCode, isProtocolCode, type RegistryError } from '../../protocol/errors.js';
import type { RequestId, ServerMessage } from '../../protocol/messages.js';
import type { Subscriber } from '../registry/event-hub.js';
import type { HeldFrame, TurnTaker } from '../scheduling/fair-scheduler.js';
import type { Logger } from '../logger.js';
import { NOT_HOLDING, UnreadMeter, type OutputBudget, type OutputHolder } from './output-budget.js';
import { CLOSINGS, type Closing } from '../registry/refusals.js';
import type { TokenBucket } from '../scheduling/token-bucket.js';

const TERMINATE_AFTER_CLOSE_MS = 2_000;

/**
 * Log calls of one connection, tagged with its id. Not a pino child: a child per connection costs
 * an allocation on every accept (and memory for every held peer) even when its level is off.
 */
export class ConnectionLog {
  constructor(
    private readonly logger: Logger,
    private readonly connId: number,
  ) {}

  info(fields: object, message: string): void {
    if (this.logger.isLevelEnabled('info')) this.logger.info({ connId: this.connId, ...fields }, message);
  }

  debug(fields: object, message: string): void {
    if (this.logger.isLevelEnabled('debug')) this.logger.debug({ connId: this.connId, ...fields }, message);
  }

  warn(fields: object, message: string): void {
    this.logger.warn({ connId: this.connId, ...fields }, message);
  }

  error(fields: object, message: string): void {
    this.logger.error({ connId: this.connId, ...fields }, message);
  }
}

/** One WebSocket connection and what it has done so far. */
export class PeerConnection implements Subscriber, TurnTaker, OutputHolder {
  /** True until the first valid request (slow-loris accounting). */
  pending = true;
  /** Set while a registration's signature is being checked: later frames wait in `backlog`. */
  busy = false;
  readonly backlog: HeldFrame[] = [];
  /** Milliseconds spent on this connection's frames in the current turn (see fair-scheduler.ts). */
  turnMs = 0;
  /** When the request being handled was dispatched (performance.now()): a registration's duration ends at its reply. */
  requestStartedAt = 0;
  /** Frames refused past a full backlog, not yet answered (see fair-scheduler.ts). */
  excess = 0;
  missedPongs = 0;
  strikes = 0;
  /** Refused requests by error code, logged once when the connection closes. */
  readonly refused: Partial<Record<ErrorCode, number>> = {};
  /** True once the server has started closing it. */
  closing = false;
  /** Why the server closed it (for the refusal summary); undefined when the peer closed first. */
  closedBy: Closing | undefined;
  /** True once its socket has closed (it is no longer among the open connections). */
  closed = false;
  idleTimer: NodeJS.Timeout | undefined;
  /** Its bytes in the server-wide output total (written by OutputBudget). */
  outputBytes = 0;
  /** Where OutputBudget filed it (written by OutputBudget). */
  outputRank = NOT_HOLDING;

  /** Tells the reply being sent from a backlog (MaxBufferedBytes counts only the backlog). */
  private readonly meter = new UnreadMeter();
  /** True while the replies of this tick are being gathered into one write (see sendText). */
  private corked = false;

  constructor(
    readonly id: number,
    readonly ws: WebSocket,
    readonly socket: Duplex,
    readonly challenge: string,
    readonly bucket: TokenBucket,
    readonly log: ConnectionLog,
    private readonly maxBufferedBytes: number,
    private readonly output: OutputBudget,
  ) {}

  send(message: ServerMessage): void {
    this.sendText(JSON.stringify(message));
  }

  /**
   * Sends a frame already serialised as JSON text (the hot paths build replies from cached JSON).
   * `asked`: it answers a request (events and the hello do not).
   */
  sendText(text: string | Buffer, asked = true): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (!this.corked) {
      // Every frame sent to this connection in this tick (replies to a burst of requests, a batch
      // of events) leaves in one writev when the tick ends, not one syscall per frame.
      this.corked = true;
      this.socket.cork();
      process.nextTick(uncork, this);
    }
    // Corked, the socket writes nothing meanwhile: the growth is exactly this frame's bytes.
    const before = this.ws.bufferedAmount;
    this.ws.send(text, { binary: false });
    this.meter.record(this.ws.bufferedAmount - before, asked, before);
  }

  uncork(): void {
    this.corked = false;
    this.socket.uncork();
    this.checkBuffered();
  }

  /**
   * Writes events the hub framed once for every subscriber (see event-hub.ts), straight to the
   * socket: ws's per-frame work would cost more than the rest of a fan-out. Safe because ws sends
   * every frame in one synchronous write (no permessage-deflate, no blobs), so frames never
   * interleave. Events are frames the client did not ask for: they count as unread until read.
   */
  deliver(wire: Buffer): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    const before = this.ws.bufferedAmount;
    this.socket.write(wire);
    this.meter.record(wire.length, false, before);
    this.checkBuffered();
  }

  queuedBytes(): number {
    return this.closed || this.socket.destroyed ? 0 : this.ws.bufferedAmount;
  }

  unreadBytes(): number {
    return this.meter.unread(this.queuedBytes());
  }

  /**
   * Called once the socket has taken what it could of this tick's frames (and on 'drain', and
   * after ws answered a ping): only what is still queued beyond the reply being sent is what the
   * reader failed to read, so a page larger than MaxBufferedBytes reaches a reader that reads.
   */
  checkBuffered(): void {
    if (this.closed) return;
    if (!this.closing && this.unreadBytes() > this.maxBufferedBytes) this.close(CLOSINGS.notReading);
    this.output.update(this);
  }

  reply(id: RequestId, error: RegistryError): void {
    // One info line per refused frame would let a flood write the disk full: count, log at close.
    // Only protocol codes go on the wire; anything else reaching here is a bug, answered generically.
    const code = isProtocolCode(error.code) ? error.code : ErrorCode.INTERNAL;
    this.log.debug({ code }, 'request refused');
    this.refused[code] = (this.refused[code] ?? 0) + 1;
    const message = code === error.code ? error.message : ERROR_CATALOG.INTERNAL.message;
    if (error.retryAfterMs === null) this.send({ type: 'error', id, code, message });
    else this.send({ type: 'error', id, code, message, retryAfterMs: error.retryAfterMs });
    // A bug while handling this connection's request: what it was doing is suspect, so it is closed
    // (the process is not: see guardProcess in cli/server-commands.ts).
    if (code === ErrorCode.INTERNAL) this.close(CLOSINGS.internalError);
  }

  close(closing: Closing): void {
    if (this.closing) return;
    this.closing = true;
    this.closedBy = closing;
    this.log.debug({ closeCode: closing.code, reason: closing.reason }, 'closing connection');
    this.ws.close(closing.code, closing.reason);
    // A peer that does not read cannot receive the close frame: cut it off after a moment.
    setTimeout(() => this.ws.terminate(), TERMINATE_AFTER_CLOSE_MS).unref();
  }

  /** Drops the socket at once, without a close frame. */
  terminate(): void {
    this.ws.terminate();
  }

  get readingPaused(): boolean {
    return this.ws.isPaused;
  }

  /** Stops reading the socket (TCP pushes back on the peer meanwhile). */
  pauseReading(): void {
    this.ws.pause();
  }

  resumeReading(): void {
    this.ws.resume();
  }
}

/** A module-level function, so that corking a tick allocates no closure. */
function uncork(conn: PeerConnection): void {
  conn.uncork();
}
