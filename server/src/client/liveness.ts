/**
 * Watches one connection for signs of life. The client pings the server itself (the server's
 * heartbeat interval is not announced), and drops a connection that shows no frame, ping or pong
 * for the timeout; the close that follows starts a reconnect.
 */
import { WebSocket } from 'ws';

export class Liveness {
  private deadline: NodeJS.Timeout | undefined;
  private pinger: NodeJS.Timeout | undefined;

  /** `timeoutMs` 0 (or less) watches nothing. */
  constructor(
    private readonly ws: WebSocket,
    private readonly timeoutMs: number,
  ) {}

  start(): void {
    this.stop();
    if (this.timeoutMs <= 0) return;
    const ws = this.ws;
    this.deadline = setTimeout(() => ws.terminate(), this.timeoutMs);
    this.pinger = setInterval(
      () => {
        if (ws.readyState === WebSocket.OPEN) ws.ping();
      },
      Math.max(1, Math.floor(this.timeoutMs / 3)),
    );
    this.deadline.unref();
    this.pinger.unref();
  }

  /** A sign of life: the deadline starts again. */
  touch(): void {
    this.deadline?.refresh();
  }

  stop(): void {
    clearTimeout(this.deadline);
    clearInterval(this.pinger);
    this.deadline = undefined;
    this.pinger = undefined;
  }
}
