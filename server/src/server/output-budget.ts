/**
 * Output the server holds for readers: per connection, the bytes a reader left unread beyond the
 * reply it is being sent (MaxBufferedBytes); server-wide, every connection's queued bytes
 * (MaxOutputBytes), past which the connections with the most unread bytes are closed first.
 */
import { CLOSINGS, type Closing } from './refusals.js';

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

/** What the budget needs of a connection. */
export interface OutputHolder {
  /** Its bytes in the budget's total, as last read (written by the budget only). */
  outputBytes: number;
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
 * The server-wide bound. The total is kept incrementally: a connection is read again only when it
 * sends (after its socket took what it could), when its socket drains, and when it closes, so a
 * send costs O(1). A connection whose write completed without a 'drain' (less than the socket's
 * high-water mark was queued) may be counted high until then: past the bound, the connections
 * holding output are read again before anyone is closed, so a stale count never closes anyone.
 *
 * Past the bound, open connections are closed (1008) with the most unread bytes first until those
 * still open hold less than the bound. A closed one keeps its queue while its close frame waits
 * behind it (at most TERMINATE_AFTER_CLOSE_MS, connection.ts); if that would take the total past
 * twice the bound, the closing ones with most queued are cut off at once. Memory for queued
 * output is therefore at most 2 x MaxOutputBytes (plus what one turn sends).
 */
export class OutputBudget {
  /** Bytes queued for all connections, as last read. */
  total = 0;
  /** Connections with bytes queued (usually only the slow readers). */
  private readonly holding = new Set<OutputHolder>();

  constructor(private readonly maxBytes: number) {}

  /** Reads `holder`'s queue again; enforces the bound if it grew past it. */
  update(holder: OutputHolder): void {
    const was = holder.outputBytes;
    const now = holder.queuedBytes();
    if (now === was) return;
    this.account(holder, now);
    if (now > was && this.total > this.maxBytes) this.enforce();
  }

  /** `holder` is gone: its bytes are freed. */
  release(holder: OutputHolder): void {
    if (holder.outputBytes !== 0) this.account(holder, 0);
  }

  private account(holder: OutputHolder, now: number): void {
    this.total += now - holder.outputBytes;
    holder.outputBytes = now;
    if (now === 0) this.holding.delete(holder);
    else this.holding.add(holder);
  }

  private enforce(): void {
    for (const holder of this.holding) this.account(holder, holder.queuedBytes());
    if (this.total <= this.maxBytes) return;
    let closingBytes = 0;
    const open: Array<[OutputHolder, number]> = [];
    for (const holder of this.holding) {
      if (holder.closing) closingBytes += holder.outputBytes;
      else open.push([holder, holder.unreadBytes()]);
    }
    open.sort(([a, unreadA], [b, unreadB]) => unreadB - unreadA || b.outputBytes - a.outputBytes);
    for (const [holder] of open) {
      if (this.total - closingBytes <= this.maxBytes) break;
      holder.close(CLOSINGS.outputFull);
      this.account(holder, holder.queuedBytes());
      closingBytes += holder.outputBytes;
    }
    if (this.total > 2 * this.maxBytes) this.cutOffClosing();
  }

  /** Terminates closing connections, most queued first, until the total is within twice the bound. */
  private cutOffClosing(): void {
    const closing = [...this.holding].filter((holder) => holder.closing).sort((a, b) => b.outputBytes - a.outputBytes);
    for (const holder of closing) {
      if (this.total <= 2 * this.maxBytes) return;
      holder.terminate();
      this.release(holder);
    }
  }
}
