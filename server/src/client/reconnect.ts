/**
 * Reconnection after a lost connection: attempts spaced by exponential backoff with full jitter,
 * each one restoring the registration and the subscription before the client counts as reconnected.
 */
import { CloseCode, ErrorCode, RegistryError } from '../protocol/errors.js';
import type { Hello } from '../protocol/reply-parser.js';
import type { ClientContext } from './client-context.js';
import type { RegisteredPeer } from './event-types.js';
import type { ReconnectOptions } from './options.js';
import { MAX_RETRY_AFTER_MS } from './requests.js';
import { request, sendRegister, shutdown } from './session.js';

/** Server refusals worth retrying on a new connection when restoring a registration. */
const TRANSIENT_SERVER_CODES: ReadonlySet<string> = new Set([
  ErrorCode.RATE_LIMITED,
  ErrorCode.INTERNAL,
  ErrorCode.REGISTRY_FULL,
  ErrorCode.UNAVAILABLE,
]);

/** Rev 3: the operator's refusals. Final: registering again would be refused the same way. */
const FINAL_SERVER_CODES: ReadonlySet<string> = new Set([ErrorCode.BLOCKED, ErrorCode.NICKNAME_RESERVED]);

/**
 * The delay before reconnection attempt `attempt` (1-based). Its window grows exponentially
 * (initialDelayMs x factor^(attempt-1), capped at maxDelayMs) and the delay falls at random in the
 * window's last `jitter` fraction: with the default jitter 1 ("full jitter") anywhere from 0 to the
 * window, the first attempt included. When a restart drops every peer at once, their attempts are
 * spread evenly over each window instead of arriving together, so the onion's admission rate
 * (torrc.template: ~300 new connections/s) is used instead of being hammered past it.
 */
export function backoffDelay(attempt: number, options: ReconnectOptions, random: () => number = Math.random): number {
  const exponential = options.initialDelayMs * options.factor ** Math.max(0, attempt - 1);
  const window = Math.min(options.maxDelayMs, exponential);
  const fraction = Math.min(1, Math.max(0, random()));
  return Math.round(window * (1 - options.jitter * fraction));
}

/** A failure of the connection itself (not a refusal by the registry): the next attempt may do better. */
function isConnectionLevel(err: unknown): boolean {
  return err instanceof RegistryError && !err.fromServer;
}

/** Why the client must not reconnect after a close; null when it should. */
function reasonToStop(ctx: ClientContext, code: number): RegistryError | null {
  if (ctx.wasReplaced || code === CloseCode.REPLACED) {
    // Another live connection holds our key: reconnecting would only take it back and forth.
    return new RegistryError(
      'REPLACED',
      'another connection registered with this key, and the registry closed this one',
    );
  }
  if (ctx.evictedReason !== null || code === CloseCode.EVICTED) {
    // The address's owner proved it, and a verified address is never taken by an unverified
    // registration: registering again would only be refused (or, against an older claim, churn).
    const why = ctx.evictedReason === null || ctx.evictedReason === '' ? '' : ` (${ctx.evictedReason})`;
    return new RegistryError(
      'EVICTED',
      `the registry closed this registration: the owner of its onion address proved it${why}; register with that ` +
        `address's onion key (--onion-key), or with your own address`,
    );
  }
  if (ctx.blockedReason !== null || code === CloseCode.BLOCKED) {
    // The operator's decision: a new connection would be refused BLOCKED (PROTOCOL.md "Moderation").
    const why = ctx.blockedReason === null || ctx.blockedReason === '' ? '' : ` (reason: ${ctx.blockedReason})`;
    return new RegistryError(
      'BLOCKED',
      `the registry's operator blocked this registration${why}: the client does not reconnect; ask the registry's ` +
        `operator, or register with another key, address or nickname`,
    );
  }
  if (ctx.settings.reconnect === null)
    return new RegistryError('CONNECTION_CLOSED', `the connection to the registry closed (code ${code})`);
  return null;
}

export class Reconnector {
  /** `open` opens a new current connection and waits for its hello. */
  constructor(
    private readonly ctx: ClientContext,
    private readonly open: () => Promise<Hello>,
  ) {}

  /** The current (greeted) connection closed: give up for good, or start reconnecting. */
  connectionLost(code: number, reason: string): void {
    const ctx = this.ctx;
    if (ctx.state === 'closed') return;
    const stop = reasonToStop(ctx, code);
    ctx.events.emit('disconnected', { code, reason, willReconnect: stop === null });
    if (stop !== null) {
      void shutdown(ctx, stop);
      return;
    }
    ctx.state = 'reconnecting';
    this.schedule(null);
  }

  private schedule(error: RegistryError | null): void {
    const ctx = this.ctx;
    const options = ctx.settings.reconnect as ReconnectOptions;
    ctx.reconnect.attempt += 1;
    const { attempt } = ctx.reconnect;
    if (attempt > options.maxAttempts) {
      const detail = error === null ? '' : `: ${error.message}`;
      void shutdown(
        ctx,
        new RegistryError('RECONNECT_FAILED', `gave up reconnecting after ${options.maxAttempts} attempts${detail}`, {
          cause: error,
        }),
      );
      return;
    }
    // A refusal that said how long to wait (rev 2 retryAfterMs) is waited out at least, up to the
    // cap: a longer wait is the backoff's to grow into, and past 2^31-1 ms Node's timer fires at once.
    const refusal = ctx.reconnect.refusal;
    ctx.reconnect.refusal = null;
    const retryAfterMs = Math.min(refusal?.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS);
    const delayMs = Math.max(backoffDelay(attempt, options), retryAfterMs);
    ctx.events.emit('reconnecting', { attempt, delayMs, error: error ?? refusal });
    ctx.reconnect.timer = setTimeout(() => {
      ctx.reconnect.timer = undefined;
      void this.attempt();
    }, delayMs);
  }

  private async attempt(): Promise<void> {
    const ctx = this.ctx;
    try {
      await this.open();
    } catch (err) {
      if (ctx.state !== 'closed') this.schedule(err as RegistryError);
      return;
    }
    if (ctx.state === 'closed') return;
    const connection = ctx.connection;
    ctx.state = 'open';
    let registered: RegisteredPeer | null;
    try {
      registered = await this.restore();
    } catch {
      // The new connection is not usable yet: drop it; its close continues the backoff.
      if (connection !== null && ctx.connection === connection) connection.terminate();
      return;
    }
    const attempt = ctx.reconnect.attempt;
    ctx.reconnect.attempt = 0;
    ctx.events.emit('reconnected', { attempt, registered, subscribed: ctx.wantSubscribed });
  }

  /**
   * Registers again and subscribes again, as before the loss. A registration the registry refuses
   * for good (e.g. NICKNAME_TAKEN) is reported as lost; anything else throws.
   */
  private async restore(): Promise<RegisteredPeer | null> {
    const ctx = this.ctx;
    let registered: RegisteredPeer | null = null;
    if (ctx.wanted !== null) {
      try {
        registered = await sendRegister(ctx, ctx.wanted);
      } catch (err) {
        if (isConnectionLevel(err)) throw err;
        if (FINAL_SERVER_CODES.has((err as RegistryError).code)) {
          // Blocked or reserved meanwhile: the client stops rather than carry on unregistered.
          ctx.wanted = null;
          void shutdown(ctx, err as RegistryError);
          throw err;
        }
        if (TRANSIENT_SERVER_CODES.has((err as RegistryError).code)) {
          ctx.reconnect.refusal = err as RegistryError;
          throw err;
        }
        ctx.wanted = null;
        ctx.events.emit('registration_lost', err as RegistryError);
      }
    }
    if (ctx.wantSubscribed) await request(ctx, 'subscribe', {}, 'subscribed');
    return registered;
  }
}
