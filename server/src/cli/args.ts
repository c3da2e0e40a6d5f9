/** A small, strict argv parser: `--name value` and `--flag`; unknown options are errors. */
import { RegistryError } from '../protocol/errors.js';

export interface ParsedArgs {
  readonly command: string | undefined;
  readonly positional: readonly string[];
  readonly options: ReadonlyMap<string, string | true>;
}

/** A command line that cannot run: the CLI prints the message and the usage, and exits 2. */
export function usageError(message: string): RegistryError {
  return new RegistryError('USAGE', message);
}

export function isUsageError(err: unknown): err is RegistryError {
  return err instanceof RegistryError && err.code === 'USAGE';
}

export function parseArgs(
  argv: readonly string[],
  valued: ReadonlySet<string>,
  flags: ReadonlySet<string>,
): ParsedArgs {
  const options = new Map<string, string | true>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i] as string;
    if (arg.startsWith('--')) {
      const body = arg.slice(2);
      const eq = body.indexOf('=');
      const name = eq < 0 ? body : body.slice(0, eq);
      const inline = eq < 0 ? undefined : body.slice(eq + 1);
      if (valued.has(name)) {
        let value = inline;
        if (value === undefined) {
          i += 1;
          value = argv[i];
        }
        if (value === undefined) throw usageError(`--${name} needs a value`);
        options.set(name, value);
      } else if (flags.has(name)) {
        options.set(name, true);
      } else {
        throw usageError(`unknown option --${name}`);
      }
    } else {
      positional.push(arg);
    }
  }
  const [command, ...rest] = positional;
  return { command, positional: rest, options };
}
