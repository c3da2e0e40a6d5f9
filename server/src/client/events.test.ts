/** events(): the async iterator over the registry's events (events.ts), driven by a bare emitter. */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { RegistryError } from '../protocol/errors.js';
import type { RegistryEvent } from '../protocol/reply-parser.js';
import { EventStream } from './events.js';
import type { RegistryClientEvents } from './event-types.js';

const left = (i: number): RegistryEvent => ({ type: 'peer_left', nickname: `peer-${i}` });

function emitter(): EventEmitter<RegistryClientEvents> {
  return new EventEmitter<RegistryClientEvents>();
}

async function take(stream: EventStream, count: number): Promise<RegistryEvent[]> {
  const taken: RegistryEvent[] = [];
  for (let i = 0; i < count; i += 1) {
    const next = await stream.next();
    if (next.done === true) break;
    taken.push(next.value);
  }
  return taken;
}

describe('events(): the registry events as an async iterator', () => {
  it('gives every event once, in order, however reading and arriving interleave', async () => {
    const events = emitter();
    const stream = new EventStream(events, { maxQueued: 5_000 });
    const seen: RegistryEvent[] = [];
    let sent = 0;
    // Bursts larger than the reads, so the queue grows and shrinks while it is read.
    for (let round = 0; round < 10; round += 1) {
      for (let i = 0; i < 700; i += 1) events.emit('event', left(sent++));
      seen.push(...(await take(stream, 500)));
    }
    seen.push(...(await take(stream, stream.queued)));
    expect(seen).toEqual(Array.from({ length: sent }, (_, i) => left(i)));
    expect(stream.queued).toBe(0);
  });

  it('waits for the next event, and ends once the client closed and the held events are read', async () => {
    const events = emitter();
    const stream = new EventStream(events);
    const waiting = stream.next();
    events.emit('event', left(1));
    expect(await waiting).toEqual({ done: false, value: left(1) });
    events.emit('event', left(2));
    events.emit('closed', null);
    expect(await stream.next()).toEqual({ done: false, value: left(2) });
    expect(await stream.next()).toEqual({ done: true, value: undefined });
  });

  it(
    'stops with EVENTS_BEHIND when its reader falls more than maxQueued behind, and lets the held ' + 'events go',
    async () => {
      const events = emitter();
      const stream = new EventStream(events, { maxQueued: 3 });
      for (let i = 0; i < 4; i += 1) events.emit('event', left(i));
      expect(stream.queued).toBe(0);
      expect(events.listenerCount('event')).toBe(0);
      const error = await stream.next().then(
        () => null,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(RegistryError);
      expect((error as RegistryError).code).toBe('EVENTS_BEHIND');
      expect((error as RegistryError).message).toMatch(/more than 3 events behind.*list the peers again/);
      expect(await stream.next()).toEqual({ done: true, value: undefined });
    },
  );

  it('holds exactly maxQueued events for a slow reader', async () => {
    const events = emitter();
    const stream = new EventStream(events, { maxQueued: 3 });
    for (let i = 0; i < 3; i += 1) events.emit('event', left(i));
    expect(await take(stream, 3)).toEqual([left(0), left(1), left(2)]);
  });

  it('stops listening when the loop is left', async () => {
    const events = emitter();
    const stream = new EventStream(events);
    events.emit('event', left(1));
    expect(await stream.return()).toEqual({ done: true, value: undefined });
    expect(events.listenerCount('event')).toBe(0);
    expect(await stream.next()).toEqual({ done: true, value: undefined });
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses maxQueued %s', (maxQueued) => {
    expect(() => new EventStream(emitter(), { maxQueued })).toThrow(/maxQueued must be a whole number of at least 1/);
  });
});
