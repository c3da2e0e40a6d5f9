import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  WaitTimeoutError,
  nextEvent,
  resultWithin,
  retry,
  waitForValue,
  waitUntil,
  withTimeout,
} from '../support/wait.js';

describe('test/support/wait.ts', () => {
  it('waitUntil resolves once the check holds', async () => {
    let calls = 0;
    await waitUntil('the third call', () => ++calls >= 3, { intervalMs: 1 });
    expect(calls).toBe(3);
  });

  it('names what was awaited, how long, and the last state seen when it times out', async () => {
    const err = await waitUntil('the door to open', () => false, { timeoutMs: 30, describe: () => 'door: shut' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect((err as Error).message).toBe('timed out after 30 ms waiting for the door to open; door: shut');
  });

  it('counts an async check still running at the deadline as a timeout', async () => {
    const started = Date.now();
    const hanging = waitUntil('a check that never answers', () => new Promise<boolean>(() => undefined), {
      timeoutMs: 30,
    });
    await expect(hanging).rejects.toThrow(
      'timed out after 30 ms waiting for a check that never answers; the last check was still running',
    );
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('stops at once when the check throws', async () => {
    await expect(
      waitUntil(
        'a process',
        () => {
          throw new Error('it exited');
        },
        { timeoutMs: 5_000 },
      ),
    ).rejects.toThrow('it exited');
  });

  it('refuses an unbounded wait', async () => {
    await expect(waitUntil('forever', () => false, { timeoutMs: Number.POSITIVE_INFINITY })).rejects.toBeInstanceOf(
      RangeError,
    );
  });

  it('waitForValue returns the first value that is not undefined', async () => {
    const values = [undefined, undefined, 0];
    expect(await waitForValue('a value', () => values.shift(), { intervalMs: 1 })).toBe(0);
  });

  it('retry returns the first success and reports the last failure on timeout', async () => {
    let attempts = 0;
    expect(
      await retry('a flaky call', async () => (++attempts < 3 ? Promise.reject(new Error(`no ${attempts}`)) : 'ok'), {
        intervalMs: 1,
      }),
    ).toBe('ok');
    const err = await retry('a dead service', () => Promise.reject(new Error('ECONNREFUSED')), {
      timeoutMs: 30,
      intervalMs: 5,
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      'timed out after 30 ms waiting for a dead service; last error: Error: ECONNREFUSED',
    );
    expect((err as Error).cause).toMatchObject({ message: 'ECONNREFUSED' });
  });

  it('withTimeout and resultWithin bound a promise', async () => {
    const never = new Promise<number>(() => undefined);
    await expect(withTimeout('the reply', never, 20)).rejects.toThrow('timed out after 20 ms waiting for the reply');
    expect(await resultWithin(never, 20, 'late')).toBe('late');
    expect(await resultWithin(Promise.resolve(1), 1_000, 'late')).toBe(1);
  });

  it('nextEvent resolves with the arguments of the next event, or names the event on timeout', async () => {
    const emitter = new EventEmitter();
    const next = nextEvent<[number, string]>(emitter, 'ready', 1_000);
    emitter.emit('ready', 1, 'a');
    expect(await next).toEqual([1, 'a']);
    await expect(nextEvent(emitter, 'gone', 20)).rejects.toThrow('timed out after 20 ms waiting for the "gone" event');
  });
});
