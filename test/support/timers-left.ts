/**
 * Which timers a piece of code left armed: for the tests of a start that fails part way, which
 * must leave nothing ticking behind it.
 */
import { vi } from 'vitest';

export interface TimersLeftOptions {
  /**
   * Also count unref'd timers. A ref'd timer keeps the process alive; an unref'd one only keeps
   * running (a lease renewal, a log poll against a database that was closed).
   */
  readonly unrefToo?: boolean;
}

/**
 * Runs `start` and returns how many of the timers it created are still armed (not fired, not
 * cleared): only those it created, since counting every active timer of the process before and
 * after would also count timers of vitest and of earlier tests that fire or are cleared meanwhile.
 */
export async function timersLeftBy(start: () => Promise<unknown>, options: TimersLeftOptions = {}): Promise<number> {
  const created: NodeJS.Timeout[] = [];
  const realTimeout = globalThis.setTimeout;
  const realInterval = globalThis.setInterval;
  vi.spyOn(globalThis, 'setTimeout').mockImplementation(((...args: Parameters<typeof setTimeout>) => {
    const timer = realTimeout(...args);
    created.push(timer);
    return timer;
  }) as typeof setTimeout);
  vi.spyOn(globalThis, 'setInterval').mockImplementation(((...args: Parameters<typeof setInterval>) => {
    const timer = realInterval(...args);
    created.push(timer);
    return timer;
  }) as typeof setInterval);
  try {
    await start();
  } finally {
    vi.mocked(globalThis.setTimeout).mockRestore();
    vi.mocked(globalThis.setInterval).mockRestore();
  }
  // A timer that fired (and was not re-armed) or was cleared is destroyed.
  return created.filter(
    (timer) =>
      (options.unrefToo === true || timer.hasRef()) && !(timer as unknown as { _destroyed: boolean })._destroyed,
  ).length;
}
