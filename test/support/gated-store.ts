/**
 * A claim store that holds a chosen call of a real one after it finished, until the test lets it
 * go: a registration paused between its store write and what follows, so that a test can change
 * the registry in between, exactly there, without timing.
 */
import type { ClaimStore } from '../../server/src/store/claim-store.js';

export interface Gate {
  /** Resolves once the held call has finished in the real store (and waits). */
  readonly reached: Promise<void>;
  /** Lets the held call return. */
  open(): void;
}

type Method = 'findForRegistration' | 'claim' | 'touch' | 'releaseKey';

export interface GatedStore {
  readonly store: ClaimStore;
  /** The real store, for writes the test makes meanwhile. */
  readonly inner: ClaimStore;
  /** Holds the next call of `method` whose first argument matches, after it finished. */
  holdAfter(method: Method, match: (arg: unknown) => boolean): Gate;
}

export function gatedStore(inner: ClaimStore): GatedStore {
  const gates: Array<{
    method: Method;
    match: (arg: unknown) => boolean;
    reachedNow: () => void;
    opened: Promise<void>;
  }> = [];
  const store = new Proxy(inner, {
    get(target, name, receiver) {
      const value: unknown = Reflect.get(target, name, receiver);
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        const result: unknown = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        const at = gates.findIndex((g) => g.method === name && g.match(args[0]));
        const gate = gates[at];
        if (gate !== undefined) {
          gates.splice(at, 1);
          gate.reachedNow();
          await gate.opened;
        }
        return result;
      };
    },
  });
  return {
    store,
    inner,
    holdAfter(method, match) {
      let reachedNow = (): void => undefined;
      let open = (): void => undefined;
      const reached = new Promise<void>((resolve) => (reachedNow = resolve));
      const opened = new Promise<void>((resolve) => (open = resolve));
      gates.push({ method, match, reachedNow, opened });
      return { reached, open };
    },
  };
}
