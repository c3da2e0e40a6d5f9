#!/usr/bin/env -S node --no-allocation-site-pretenuring
/**
 * The `p2p-registry` executable: runs the command and exits with its code. The one other exit is
 * serve's, after an uncaught exception (guardProcess, cli/server-commands.ts).
 */
import { main } from './cli/main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `p2p-registry: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
