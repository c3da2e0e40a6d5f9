import { describe, expect, it } from 'vitest';
import { KeyOrder } from './key-order.js';

/** A write that finishes when the test says so, recording when it started. */
function pending(log: string[], name: string): { write: () => Promise<string>; finish: (ok?: boolean) => void } {
  let finish: (ok?: boolean) => void = () => undefined;
  const done = new Promise<string>(
    (resolve, reject) => (finish = (ok = true) => (ok ? resolve(name) : reject(new Error(name)))),
  );
  return {
    write: () => {
      log.push(`start ${name}`);
      return done;
    },
    finish: (ok) => finish(ok),
  };
}

describe("the order of each key's writes", () => {
  it('starts a write of a key only once the writes of that key issued before it settled, failed ones too', async () => {
    const order = new KeyOrder();
    const log: string[] = [];
    const [claim, release] = [pending(log, 'claim'), pending(log, 'release')];
    const claiming = order.run(['k'], claim.write).catch((err: Error) => err.message);
    const releasing = order.run(['k'], release.write);
    await Promise.resolve();
    expect(log).toEqual(['start claim']);
    claim.finish(false);
    expect(await claiming).toBe('claim');
    await expect.poll(() => log).toEqual(['start claim', 'start release']);
    release.finish();
    expect(await releasing).toBe('release');
  });

  it('runs writes of other keys at once, and a write of several keys after each of them', async () => {
    const order = new KeyOrder();
    const log: string[] = [];
    const [a, b, both] = [pending(log, 'a'), pending(log, 'b'), pending(log, 'both')];
    void order.run(['a'], a.write);
    void order.run(['b'], b.write);
    const revert = order.run(['a', 'b'], both.write);
    await Promise.resolve();
    expect(log).toEqual(['start a', 'start b']);
    a.finish();
    await new Promise((resolve) => setImmediate(resolve));
    expect(log).toEqual(['start a', 'start b']);
    b.finish();
    await expect.poll(() => log).toEqual(['start a', 'start b', 'start both']);
    both.finish();
    expect(await revert).toBe('both');
  });
});
