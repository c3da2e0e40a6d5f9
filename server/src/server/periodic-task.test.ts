import { afterEach, describe, expect, it } from 'vitest';
import { delay, waitUntil } from '../../../test/support/wait.js';
import { PeriodicTask } from './periodic-task.js';

const tasks: PeriodicTask[] = [];

afterEach(async () => {
  await Promise.all(tasks.splice(0).map((task) => task.stop()));
});

function task(run: () => Promise<void>, everyMs: number): PeriodicTask {
  const made = new PeriodicTask(run, everyMs);
  tasks.push(made);
  return made;
}

describe('a periodic task', () => {
  it('runs at its interval', async () => {
    let runs = 0;
    task(async () => {
      runs += 1;
    }, 20).start();
    await waitUntil('three runs', () => runs >= 3, { timeoutMs: 2_000 });
  });

  it('skips the ticks that find its previous run still going: never two runs at once', async () => {
    let running = 0;
    let most = 0;
    let runs = 0;
    task(async () => {
      running += 1;
      runs += 1;
      most = Math.max(most, running);
      await delay(100);
      running -= 1;
    }, 10).start();
    await delay(250);
    expect(most).toBe(1);
    // About 250 / 100 runs, not 250 / 10.
    expect(runs).toBeLessThanOrEqual(3);
  });

  it('joins a run in progress when triggered, and runs again once it ended', async () => {
    let runs = 0;
    const periodic = task(async () => {
      runs += 1;
      await delay(30);
    }, 60_000);
    const first = periodic.trigger();
    const second = periodic.trigger();
    expect(periodic.busy).toBe(true);
    await Promise.all([first, second]);
    expect(runs).toBe(1);
    await periodic.trigger();
    expect(runs).toBe(2);
  });

  it('waits for the run in progress when stopped, and runs no more', async () => {
    let finished = false;
    let runs = 0;
    const periodic = task(async () => {
      runs += 1;
      await delay(50);
      finished = true;
    }, 10);
    periodic.start();
    await delay(15);
    await periodic.stop();
    expect(finished).toBe(true);
    const after = runs;
    await periodic.trigger();
    await delay(40);
    expect(runs).toBe(after);
  });
});
