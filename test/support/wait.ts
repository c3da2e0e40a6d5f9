/**
 * The one set of waiting helpers for the test suites. Every wait is bounded: it has a finite
 * timeout, and when it runs out the error names what was awaited, for how long, and (when asked)
 * the last state seen, so a failure reads as "timed out after 5000 ms waiting for X", not as a
 * test timeout with no context.
 */
import { once, type EventEmitter } from 'node:events';
import { expect } from 'vitest';
import { RegistryError } from '../../server/src/protocol/errors.js';

export const DEFAULT_TIMEOUT_MS = 5_000;
export const DEFAULT_INTERVAL_MS = 10;

export interface WaitOptions {
  /** How long to wait in all; finite (default 5 s). */
  readonly timeoutMs?: number;
  /** Pause between two checks (default 10 ms). */
  readonly intervalMs?: number;
  /** Adds the last state seen to the timeout message. */
  readonly describe?: () => string;
}

/** A wait that ran out of time; `what` is the thing that was awaited. */
export class WaitTimeoutError extends Error {
  readonly what: string;
  readonly timeoutMs: number;

  constructor(what: string, timeoutMs: number, detail?: string, options?: ErrorOptions) {
    super(
      `timed out after ${timeoutMs} ms waiting for ` +
        `${what}${detail === undefined || detail === '' ? '' : `; ${detail}`}`,
      options,
    );
    this.name = 'WaitTimeoutError';
    this.what = what;
    this.timeoutMs = timeoutMs;
  }
}

function checkedTimeout(timeoutMs: number, what: string): number {
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0)
    throw new RangeError(`waiting for ${what}: timeoutMs must be a finite number >= 0, got ${timeoutMs}`);
  return timeoutMs;
}

function describeSafely(describe: (() => string) | undefined): string | undefined {
  if (describe === undefined) return undefined;
  try {
    return describe();
  } catch (err) {
    return `(describing the state failed: ${String(err)})`;
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * `promise`'s value if it settles within `timeoutMs`, else `fallback` (for "is it closed by then?").
 * A rejection passes through.
 */
export async function resultWithin<T, F>(promise: Promise<T>, timeoutMs: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<F>((resolve) => {
    timer = setTimeout(() => resolve(fallback), checkedTimeout(timeoutMs, 'a result'));
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** `promise`'s value, or a WaitTimeoutError naming `what` if it takes longer than `timeoutMs`. */
export async function withTimeout<T>(what: string, promise: Promise<T>, timeoutMs: number): Promise<T> {
  const none = Symbol('timed out');
  const result = await resultWithin(promise, checkedTimeout(timeoutMs, what), none);
  if (result === none) throw new WaitTimeoutError(what, timeoutMs);
  return result as T;
}

/** The parts of a message that are there, joined with "; ". */
function joinDetails(...parts: Array<string | undefined>): string | undefined {
  const present = parts.filter((p): p is string => p !== undefined && p !== '');
  return present.length === 0 ? undefined : present.join('; ');
}

async function poll<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  options: WaitOptions,
  cause?: () => unknown,
): Promise<T> {
  const timeoutMs = checkedTimeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS, what);
  const intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
  const deadline = Date.now() + timeoutMs;
  const pending = Symbol('still checking');
  for (;;) {
    const result = await resultWithin(Promise.resolve().then(probe), Math.max(0, deadline - Date.now()), pending);
    if (result !== pending && result !== undefined) return result as T;
    const left = deadline - Date.now();
    if (result === pending || left <= 0) {
      const detail = joinDetails(
        result === pending ? 'the last check was still running' : undefined,
        describeSafely(options.describe),
      );
      throw new WaitTimeoutError(what, timeoutMs, detail, cause === undefined ? undefined : { cause: cause() });
    }
    await delay(Math.min(intervalMs, left));
  }
}

/**
 * Calls `probe` until it returns a value other than undefined, and returns that value. `probe` may
 * be async; one still running at the deadline counts as a timeout. An error it throws ends the
 * wait at once (so a probe can report "this will never happen", e.g. the process exited).
 */
export function waitForValue<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  options: WaitOptions = {},
): Promise<T> {
  return poll(what, probe, options);
}

/** Waits until `check` holds (see waitForValue for async checks and errors). */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  options: WaitOptions = {},
): Promise<void> {
  await poll(what, async () => ((await check()) ? true : undefined), options);
}

/**
 * Runs `attempt` until it resolves, pausing `intervalMs` after each failure; on timeout the error
 * names the last failure (in the message and as `cause`).
 */
export async function retry<T>(what: string, attempt: () => Promise<T>, options: WaitOptions = {}): Promise<T> {
  let lastError: unknown;
  const probe = async (): Promise<{ value: T } | undefined> => {
    try {
      return { value: await attempt() };
    } catch (err) {
      lastError = err;
      return undefined;
    }
  };
  const describe = (): string =>
    joinDetails(
      lastError === undefined ? undefined : `last error: ${String(lastError)}`,
      describeSafely(options.describe),
    ) ?? '';
  return (await poll(what, probe, { ...options, describe }, () => lastError)).value;
}

/** The arguments of `emitter`'s next `event`, or a WaitTimeoutError after `timeoutMs`. */
export async function nextEvent<A extends unknown[] = unknown[]>(
  emitter: EventEmitter,
  event: string,
  timeoutMs: number = DEFAULT_TIMEOUT_MS,
): Promise<A> {
  const what = `the ${JSON.stringify(event)} event`;
  const signal = AbortSignal.timeout(checkedTimeout(timeoutMs, what));
  try {
    return (await once(emitter, event, { signal })) as A;
  } catch (err) {
    if (signal.aborted) throw new WaitTimeoutError(what, timeoutMs, undefined, { cause: err });
    throw err;
  }
}

/** The RegistryError a promise rejects with; fails the test when it resolves or rejects with something else. */
export async function registryRejection(promise: Promise<unknown>): Promise<RegistryError> {
  const err = await promise.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RegistryError);
  return err as RegistryError;
}
