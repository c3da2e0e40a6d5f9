/**
 * The order of each key's durable writes (claim-store.ts: a release is never overtaken by a claim
 * of the same key issued before it, nor a claim by a revert). On PostgreSQL every write takes a pool
 * connection of its own, so two writes of one key would otherwise commit in whichever order the
 * database let them (one may wait for a lock the other does not need); SQLite's group commit runs
 * every write in issue order already.
 */
export class KeyOrder {
  /** Per key, the last write issued for it, settled either way. */
  readonly #tails = new Map<string, Promise<void>>();

  /** Starts `write` once every write issued earlier for any of `keys` has settled. */
  run<T>(keys: readonly string[], write: () => Promise<T>): Promise<T> {
    const unique = [...new Set(keys)];
    const earlier = unique.flatMap((key) => this.#tails.get(key) ?? []);
    const result = earlier.length === 0 ? write() : Promise.all(earlier).then(write);
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    for (const key of unique) this.#tails.set(key, settled);
    void settled.then(() => {
      for (const key of unique) if (this.#tails.get(key) === settled) this.#tails.delete(key);
    });
    return result;
  }
}
