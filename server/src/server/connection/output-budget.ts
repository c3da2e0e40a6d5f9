/**
 * Output the server holds for readers: per connection, the bytes a reader left unread beyond the
 * reply it is being sent (MaxBufferedBytes); server-wide, every connection's queued bytes
 * (MaxOutputBytes), past which the connections with the most unread bytes are closed first.
 */
import { CLOSINGS, type Closing } from '../registry/refusals.js';

/**
 * Where one connection's output stream stands, to tell "the reply being sent" from a backlog.
 * Positions count the bytes of frames handed to the socket since it opened. The socket's queue is
 * first in, first out, so `sent - queued` bytes have left the process; of the reply frames still
 * queued, the largest is exempt (a page of any allowed size must reach a reader that reads), and
 * everything else queued counts: events, other replies, pings. Exempting one reply, not all, means
 * a client that asks for page after page and never reads still passes the limit.
 */
export class UnreadMeter {
  private sent = 0;
  private replyStart = 0;
  private replyEnd = 0;

  /** A frame of `size` bytes was queued after `queuedBefore` bytes; `asked`: it answers a request. */
  record(size: number, asked: boolean, queuedBefore: number): void {
    if (asked && size > this.replyLeft(this.sent - queuedBefore)) {
      this.replyStart = this.sent;
      this.replyEnd = this.sent + size;
    }
    this.sent += size;
  }

  /** Of `queued` bytes waiting for the socket now, those beyond the exempt reply. */
  unread(queued: number): number {
    return queued - this.replyLeft(this.sent - queued);
  }

  /** Bytes of the exempt reply not yet written, once `written` bytes of the stream have been. */
  private replyLeft(written: number): number {
    return Math.max(0, this.replyEnd - Math.max(written, this.replyStart));
  }
}

/** Where the budget files a holder (`OutputHolder.outputRank`): nothing queued. */
export const NOT_HOLDING = -2;
/** Filed among the closing holders: its queue drains behind its close frame. */
const CLOSING = -1;
/** Ranks of open holders by unread bytes: 0 (none) to 119 (see rankOf). */
const RANKS = 120;

/** What the budget needs of a connection. */
export interface OutputHolder {
  /** Its bytes in the budget's total, as last read (written by the budget only). */
  outputBytes: number;
  /** Where the budget filed it, as last read (written by the budget only; NOT_HOLDING at first). */
  outputRank: number;
  readonly closing: boolean;
  /** Bytes queued for its socket now (WebSocket bufferedAmount). */
  queuedBytes(): number;
  /** Of those, the bytes beyond the reply it is being sent (UnreadMeter). */
  unreadBytes(): number;
  close(closing: Closing): void;
  /** Drops the socket and its queue at once. */
  terminate(): void;
}

/**
 * The server-wide bound, at a cost per send that does not grow with the number of connections
 * holding output (thousands of slow subscribers in a fan-out must not make each send dearer).
 *
 * Totals are kept incrementally, apart for open and closing connections: a holder is read again
 * when it sends (after its socket took what it could), when its socket drains, and when it closes.
 * Open holders are filed by unread bytes in ranks (a quarter of a doubling each), so the ones with
 * the most unread are found without sorting. A holder whose write completed without a 'drain'
 * (less than the socket's high-water mark was queued) may be counted high until it is read again:
 * each send that grows a queue also reads one other holder again, in turn, and a candidate is read
 * again before it is closed, so a stale count is short-lived and never closes the holder it is for.
 *
 * Past the bound, open connections are closed (1008), those in the highest rank of unread bytes
 * first (within a rank, unread bytes differ by less than a quarter), until those still open hold
 * less than the bound. Every holder read again either stays (and is closed) or moves down a rank,
 * so enforcement costs O(1) amortised per send. A closed one keeps its queue while its close frame
 * waits behind it (at most TERMINATE_AFTER_CLOSE_MS, peer-connection.ts): its bytes no longer count
 * against the open bound, so it cannot make every later send enforce again. If the closing ones
 * would take the total past twice the bound, they are cut off at once, the longest closing first
 * (the nearest to being cut off anyway). Memory for queued output is therefore at most
 * 2 x MaxOutputBytes (plus what one turn sends).
 */
export class OutputBudget {
  /** Bytes queued for open connections, as last read. */
  private openBytes = 0;
  /** Bytes queued for connections being closed, as last read. */
  private closingBytes = 0;
  /** Every holder (usually only the slow readers): what the turn of re-reads goes through. */
  private readonly holding = new Set<OutputHolder>();
  private turn: Iterator<OutputHolder> = this.holding.values();
  /** Open holders by rank of unread bytes. */
  private readonly ranks = Array.from({ length: RANKS }, () => new Set<OutputHolder>());
  /** Closing holders, in the order they were found closing. */
  private readonly closing = new Set<OutputHolder>();

  constructor(private readonly maxBytes: number) {}

  /** Bytes queued for all connections, as last read. */
  get total(): number {
    return this.openBytes + this.closingBytes;
  }

  /** Reads `holder`'s queue again; enforces the bound if it grew past it. */
  update(holder: OutputHolder): void {
    if (!this.read(holder)) return;
    this.readNextInTurn();
    if (this.openBytes > this.maxBytes) this.closeMostUnread();
    if (this.total > 2 * this.maxBytes) this.cutOffClosing();
  }

  /** `holder` is gone: its bytes are freed. */
  release(holder: OutputHolder): void {
    this.file(holder, 0, NOT_HOLDING);
  }

  /** Reads `holder` again and files it where it belongs now; true if its queue grew. */
  private read(holder: OutputHolder): boolean {
    const queued = holder.queuedBytes();
    // The common case, a reader that reads: nothing queued before or now.
    if (queued === 0 && holder.outputRank === NOT_HOLDING) return false;
    const rank = queued === 0 ? NOT_HOLDING : holder.closing ? CLOSING : rankOf(holder.unreadBytes());
    const grew = queued > holder.outputBytes;
    this.file(holder, queued, rank);
    return grew;
  }

  private file(holder: OutputHolder, queued: number, rank: number): void {
    const was = holder.outputRank;
    if (was === CLOSING) this.closingBytes -= holder.outputBytes;
    else if (was >= 0) this.openBytes -= holder.outputBytes;
    if (rank === CLOSING) this.closingBytes += queued;
    else if (rank >= 0) this.openBytes += queued;
    holder.outputBytes = queued;
    if (rank === was) return;
    holder.outputRank = rank;
    this.filed(was)?.delete(holder);
    this.filed(rank)?.add(holder);
    if (was === NOT_HOLDING) this.holding.add(holder);
    else if (rank === NOT_HOLDING) this.holding.delete(holder);
  }

  private filed(rank: number): Set<OutputHolder> | undefined {
    return rank === CLOSING ? this.closing : this.ranks[rank];
  }

  /** Reads the next holder in turn again (bounds how long a count can stay stale). */
  private readNextInTurn(): void {
    let next = this.turn.next();
    if (next.done === true) {
      this.turn = this.holding.values();
      next = this.turn.next();
    }
    if (next.done !== true) this.read(next.value);
  }

  private closeMostUnread(): void {
    for (let rank = RANKS - 1; rank >= 0; rank -= 1) {
      for (const holder of this.ranks[rank]!) {
        if (this.openBytes <= this.maxBytes) return;
        this.read(holder);
        // Drained since it was filed here (or closing): it is where it belongs now, read again there.
        if (holder.outputRank !== rank) continue;
        holder.close(CLOSINGS.outputFull);
        this.read(holder);
      }
    }
  }

  /** Terminates closing connections, longest closing first, until the total is within twice the bound. */
  private cutOffClosing(): void {
    for (const holder of this.closing) {
      if (this.total <= 2 * this.maxBytes) return;
      this.read(holder);
      if (holder.outputRank !== CLOSING) continue;
      holder.terminate();
      this.release(holder);
    }
  }
}

/**
 * Ranks unread bytes four to a doubling (0 for none, up to 119): within a rank they differ by less
 * than a quarter. The leading bit and the two after it, computed without a logarithm.
 */
function rankOf(unread: number): number {
  if (unread <= 0) return 0;
  const bytes = Math.min(unread, 0x7fff_ffff);
  const top = 31 - Math.clz32(bytes);
  return top < 2 ? bytes : top * 4 + ((bytes >>> (top - 2)) & 3) - 4;
}
