/**
 * One attempt to connect (or reconnect) that rides out a dead introduction point. Behind
 * Onionbalance, tor may hold a descriptor whose introduction points belong to a backend that just
 * died; such a point can keep acknowledging for many seconds, and each pick of it stalls a
 * connection ~16 s before tor tries another. So an attempt with no hello after `raceDelayMs` is
 * raced by a second one with SOCKS credentials of its own (socks-isolation.ts): tor builds
 * it new circuits, which likely go through another introduction point. The first hello wins; the
 * other attempt is closed, and nothing of it reaches the client.
 *
 * Policy:
 * - The first attempt uses the proxy as configured; a racer always gets a fresh random label, even
 *   when credentials were configured (they are an isolation label to tor; the racer's keeps the
 *   configured username as its prefix). A proxy that checks logins (not tor) refuses that label:
 *   the racer fails at once and the first attempt carries on alone, as without racing; set
 *   raceDelayMs 0 to send no racer at all.
 * - Without SOCKS (a direct ws:// URL) the racer is a second plain connection: it costs one socket
 *   and still gets past a connection stalled on the way.
 * - Bounded: at most MAX_RACING_ATTEMPTS in flight, a racer starts only while no attempt has failed
 *   yet, and connectTimeoutMs bounds the whole race (a racer gets what is left of it).
 * - When every attempt fails, the first attempt's error is reported: it ran with the settings as
 *   given, so racing changes whether a connection succeeds, never what a failure says.
 */
import { RegistryError } from '../protocol/errors.js';
import type { ClientSettings } from './options.js';
import { freshIsolation } from './socks-isolation.js';
import { SocksAgent } from './socks5.js';
import { RegistryConnection, type AttemptHandlers, type ConnectionHandlers } from './transport.js';

/** Attempts in flight at most: the first and one racer. */
export const MAX_RACING_ATTEMPTS = 2;

/**
 * Attempt `index` of a race, given `timeoutMs`: the first through the proxy as configured, a racer on fresh circuits.
 */
function openAttempt(
  settings: ClientSettings,
  index: number,
  timeoutMs: number,
  handlers: AttemptHandlers,
): RegistryConnection {
  const { socks } = settings;
  const proxy = socks === undefined || index === 0 ? socks : freshIsolation(socks);
  const agent = proxy === undefined ? undefined : new SocksAgent(proxy, { socksTimeoutMs: timeoutMs });
  return new RegistryConnection(settings, handlers, { agent, timeoutMs });
}

export class ConnectionRace {
  /** Resolves with the first connection greeted; rejects with the first attempt's error when all fail. */
  readonly won: Promise<RegistryConnection>;
  private readonly attempts: RegistryConnection[] = [];
  private readonly failures: Array<RegistryError | undefined> = [];
  private readonly closing: Array<Promise<void>> = [];
  private readonly deadline: number;
  private readonly guarded: AttemptHandlers;
  private winner: RegistryConnection | null = null;
  private settled = false;
  private racer: NodeJS.Timeout | undefined;
  private resolve!: (connection: RegistryConnection) => void;
  private reject!: (error: RegistryError) => void;

  /** Starts the first attempt; `onWin` learns the winner as soon as its hello is read. */
  constructor(
    private readonly settings: ClientSettings,
    handlers: ConnectionHandlers,
    private readonly onWin: (connection: RegistryConnection) => void,
  ) {
    this.won = new Promise<RegistryConnection>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.guarded = {
      onGreeted: (connection) => this.greeted(connection),
      onFrame: (connection, frame) => {
        if (connection === this.winner) handlers.onFrame(connection, frame);
      },
      onClose: (connection, code, reason) => {
        if (connection === this.winner) handlers.onClose(connection, code, reason);
      },
    };
    this.deadline = performance.now() + settings.connectTimeoutMs;
    this.start(settings.connectTimeoutMs);
  }

  /** Stops the race (the client is closing): attempts in flight are closed, `won` rejects with CLOSED. */
  close(): Promise<void> {
    if (!this.settled) {
      this.finish();
      for (const attempt of this.attempts) this.closing.push(attempt.close());
      this.reject(new RegistryError('CLOSED', 'the client was closed while connecting'));
    }
    return Promise.all(this.closing).then(() => undefined);
  }

  private start(timeoutMs: number): void {
    const index = this.attempts.length;
    const attempt = openAttempt(this.settings, index, timeoutMs, this.guarded);
    this.attempts.push(attempt);
    attempt.ready.then(
      () => undefined, // the win was taken in onGreeted, before anything after the hello was read
      (err: unknown) => this.failed(index, err as RegistryError),
    );
    this.scheduleRacer();
  }

  private scheduleRacer(): void {
    const { raceDelayMs } = this.settings;
    if (raceDelayMs <= 0 || this.attempts.length >= MAX_RACING_ATTEMPTS) return;
    if (performance.now() + raceDelayMs >= this.deadline) return;
    this.racer = setTimeout(() => {
      this.racer = undefined;
      const left = Math.floor(this.deadline - performance.now());
      if (!this.settled && left > 0 && this.failures.length === 0) this.start(left);
    }, raceDelayMs);
  }

  private greeted(connection: RegistryConnection): void {
    // A loser's hello that arrives while it closes is not taken.
    if (this.settled) return;
    this.finish();
    this.winner = connection;
    for (const attempt of this.attempts) if (attempt !== connection) this.closing.push(attempt.close());
    this.onWin(connection);
    this.resolve(connection);
  }

  private failed(index: number, error: RegistryError): void {
    this.failures[index] = error;
    if (this.settled || this.failures.filter((failure) => failure !== undefined).length < this.attempts.length) return;
    // Nothing left in flight: a fresh attempt after a failure is the reconnect's to make, with backoff.
    this.finish();
    this.reject(this.failures[0] ?? error);
  }

  private finish(): void {
    this.settled = true;
    clearTimeout(this.racer);
    this.racer = undefined;
  }
}
