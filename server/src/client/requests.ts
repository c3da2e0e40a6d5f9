/**
 * Requests in flight on the current connection: each gets a numeric id, a timeout, and the reply
 * (or error reply) that carries its id. Replies arrive in order, but are matched by id anyway; an
 * error with id null (a frame the server refused without reading it) answers the oldest one. A
 * request that changes nothing, refused with retryAfterMs, is sent once more after that wait.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { RegistryError } from '../protocol/errors.js';
import { readRefusal, type Frame } from '../protocol/reply-parser.js';
import type { RegistryConnection } from './transport.js';

/** Request body fields other than `type` and `id`. */
export type RequestBody = Record<string, string | number | boolean | null>;

interface Pending {
  readonly expect: string;
  readonly resolve: (frame: Frame) => void;
  readonly reject: (err: RegistryError) => void;
  readonly timer: NodeJS.Timeout;
}

export class PendingRequests {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(private readonly timeoutMs: number) {}

  /** Sends a request on a greeted connection; resolves with the reply of type `expect`. */
  send(connection: RegistryConnection, type: string, body: RequestBody, expect: string): Promise<Frame> {
    const id = this.nextId++;
    const receivedAtSend = connection.received;
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RegistryError('TIMEOUT', `no reply to "${type}" within ${this.timeoutMs} ms`));
        // Nothing at all came back since: the link is dead, so reconnect instead of waiting.
        if (connection.received === receivedAtSend) connection.terminate();
      }, this.timeoutMs);
      this.pending.set(id, { expect, resolve, reject, timer });
      connection.send({ ...body, type, id });
    });
  }

  /**
   * Settles the request a reply answers. False when the frame is no reply (it has no numeric id):
   * then it may be an event. A reply to no pending request (timed out) is dropped.
   */
  settle(frame: Frame): boolean {
    // Replies come in request order: an unread frame's refusal belongs to the oldest request.
    const id = frame.type === 'error' && frame.id === null ? this.pending.keys().next().value : frame.id;
    if (frame.type === 'error' && frame.id === null && id === undefined) return true;
    if (typeof id !== 'number') return false;
    const pending = this.pending.get(id);
    if (pending === undefined) return true;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    if (frame.type === 'error') pending.reject(readRefusal(frame));
    else if (frame.type === pending.expect) pending.resolve(frame);
    else
      pending.reject(
        new RegistryError(
          'BAD_RESPONSE',
          `expected "${pending.expect}" from the registry, got "${String(frame.type)}"`,
        ),
      );
    return true;
  }

  /** Fails every request in flight (the connection closed, or the client did). */
  rejectAll(error: RegistryError): void {
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.pending.clear();
  }
}

/** Requests that change nothing on the server, so sending one twice is harmless. */
const SAFE_TO_RETRY: ReadonlySet<string> = new Set(['ping', 'lookup', 'list', 'subscribe']);
/**
 * The longest retryAfterMs the client waits out by itself: a request refused with a longer one is
 * surfaced for the caller to decide, and a reconnect waits this long at most (reconnect.ts).
 */
export const MAX_RETRY_AFTER_MS = 10_000;

/** How long to wait before the one retry of `type` after `err`; undefined: no retry, surface it. */
export function retryDelay(type: string, err: unknown): number | undefined {
  if (!SAFE_TO_RETRY.has(type) || !(err instanceof RegistryError)) return undefined;
  if (err.code !== 'RATE_LIMITED' && err.code !== 'UNAVAILABLE') return undefined;
  if (err.retryAfterMs === null || err.retryAfterMs > MAX_RETRY_AFTER_MS) return undefined;
  return err.retryAfterMs;
}

/**
 * Sends with `send`; a safe request (ping, lookup, list, subscribe) refused with retryAfterMs is
 * sent once more after that wait. Anything else (register, unregister) surfaces the RegistryError,
 * whose retryAfterMs says when the caller may try again.
 */
export async function sendRetryingOnce(type: string, send: () => Promise<Frame>): Promise<Frame> {
  try {
    return await send();
  } catch (err) {
    const wait = retryDelay(type, err);
    if (wait === undefined) throw err;
    await delay(wait);
    return send();
  }
}
