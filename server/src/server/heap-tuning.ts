/**
 * The V8 settings of the serving process. The image's NODE_OPTIONS sizes the heap
 * (server/Dockerfile); the flag here cannot go there, since NODE_OPTIONS accepts only a few V8
 * flags, so the project gives it on node's command line: the image's ENTRYPOINT and the bin's
 * shebang (server/src/cli.ts). Node documents setting V8 flags after start as unsafe, so `serve`
 * sets one at runtime only when node was started without it (`node server/dist/cli.js serve` by
 * hand), and logs a warning that says so. A server started in-process, as tests do, leaves its
 * host's V8 alone.
 *
 * Allocation-site pretenuring is off. V8 watches each object and array literal: when, at a
 * scavenge of a full-size young generation, 85% or more of a literal's objects are still alive,
 * it allocates that literal's objects directly in old space from then on, for the life of the
 * process. A burst of registrations is exactly that pattern for ws's receiver, which gives every
 * connection a fresh `[]` of fragments after each message: a thousand connections that each sent
 * one message and stay open keep a thousand such arrays alive. From then on every message's
 * fragment array is born in old space and holds its young payload, so each message is copied out
 * of the young generation and promoted, and old space fills at the message rate: frequent
 * mark-compacts. bench/README.md ("The cluster") has the figures: an instance holding many
 * registered connections answered markedly fewer lookups per CPU-second until pretenuring was
 * turned off. Whether the trap springs depends on the young generation's size at the burst, so a
 * single host could meet it too.
 */
import { setFlagsFromString } from 'node:v8';

export const SERVING_V8_FLAGS: readonly string[] = ['--no-allocation-site-pretenuring'];

/** The serving flags node's command line (`execArgv`) did not give. */
export function flagsMissingFrom(execArgv: readonly string[]): readonly string[] {
  return SERVING_V8_FLAGS.filter((flag) => !execArgv.includes(flag));
}

/** The fallback: sets the serving flags node was started without, and returns them. */
export function tuneHeapForServing(execArgv: readonly string[] = process.execArgv): readonly string[] {
  const missing = flagsMissingFrom(execArgv);
  for (const flag of missing) setFlagsFromString(flag);
  return missing;
}
