/**
 * Heartbeats: every interval each connection is sent a WebSocket ping; one that missed two pongs in
 * a row is dropped (its peer leaves the table when the socket closes).
 */
import type { PeerConnection } from './peer-connection.js';

const MAX_MISSED_PONGS = 2;

/** Counts `conn`'s pongs; called once, when it opens. */
export function watchPongs(conn: PeerConnection): void {
  conn.ws.on('pong', () => {
    conn.missedPongs = 0;
  });
}

export class Heartbeats {
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly connections: Iterable<PeerConnection>,
    intervalMs: number,
  ) {
    this.timer = setInterval(() => this.beat(), intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private beat(): void {
    for (const conn of this.connections) {
      if (conn.missedPongs >= MAX_MISSED_PONGS) {
        conn.log.debug({ missedPongs: conn.missedPongs }, 'heartbeat missed twice: dropping connection');
        conn.terminate();
        continue;
      }
      conn.missedPongs += 1;
      conn.ws.ping();
    }
  }
}
