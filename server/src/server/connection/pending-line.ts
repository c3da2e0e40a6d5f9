/**
 * Connections without a valid request yet, oldest first: TCP sockets still in the HTTP handshake
 * and upgraded connections that have sent nothing valid alike (MaxPendingConnections). At the cap
 * a newcomer is let in and the oldest is evicted, so idle connections opened in a loop cannot keep
 * honest newcomers out: each gets the time the attacker needs to open the cap's worth after it.
 */
import type { Duplex } from 'node:stream';

export class PendingLine {
  /** Keyed by the TCP socket, which outlives the upgrade: a connection keeps its place in line. */
  private readonly line = new Map<Duplex, () => void>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.line.size;
  }

  /** A new socket joins at the end; while the line is full its oldest is evicted first. */
  join(socket: Duplex, evict: () => void): void {
    while (this.line.size >= this.max) {
      const [oldest, evictOldest] = this.line.entries().next().value as [Duplex, () => void];
      this.line.delete(oldest);
      evictOldest();
    }
    this.line.set(socket, evict);
  }

  /** How a socket still in line is evicted from now on (it became a WebSocket); keeps its place. */
  update(socket: Duplex, evict: () => void): void {
    if (this.line.has(socket)) this.line.set(socket, evict);
  }

  /** The socket sent a valid request, was refused, or closed: it no longer waits. */
  leave(socket: Duplex): void {
    this.line.delete(socket);
  }
}
