/**
 * Unknown sections and keys in config.ini, and unknown REGISTRY_* environment variables, each with
 * the nearest valid name: a misspelt key or variable would otherwise be ignored silently and its
 * default used (a misspelt REGISTRY_STORE_DATABASE: a single-host SQLite registry).
 */

/** Sections and their keys, as config.ini spells them. */
export type KnownKeys = ReadonlyMap<string, readonly string[]>;

/** Removed keys by section, each with why and what to do instead (pino-style). */
export type RemovedKeys = ReadonlyMap<string, ReadonlyMap<string, string>>;

/** One problem line for every removed key set in `sections` or in its environment variable. */
export function removedNames(
  sections: Readonly<Record<string, unknown>>,
  env: NodeJS.ProcessEnv,
  removed: RemovedKeys,
  envName: (section: string, key: string) => string,
): string[] {
  const problems: string[] = [];
  for (const [section, keys] of removed) {
    const body = sections[section];
    for (const [key, why] of keys) {
      if (typeof body === 'object' && body !== null && Object.hasOwn(body, key))
        problems.push(`[${section}] ${key} ${why}`);
      if (env[envName(section, key)] !== undefined)
        problems.push(`${envName(section, key)} ([${section}] ${key}) ${why}`);
    }
  }
  return problems;
}

/** Edit distance between two names, compared without case. */
function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= y.length; j += 1) {
      const substitution = (previous[j - 1] as number) + (x[i - 1] === y[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution));
    }
    previous = current;
  }
  return previous[y.length] as number;
}

/** The candidate nearest to `name`, if it is near enough to be a likely typo. */
export function nearestName(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const d = distance(name, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

function unknownKey(section: string, key: string, known: KnownKeys): string {
  const keys = known.get(section) ?? [];
  const home = [...known].find(([, names]) => names.some((name) => name.toLowerCase() === key.toLowerCase()));
  if (home !== undefined && home[0] !== section) {
    const spelt = home[1].find((name) => name.toLowerCase() === key.toLowerCase()) as string;
    return `unknown key [${section}] ${key}: ${spelt} belongs in [${home[0]}]`;
  }
  const near = nearestName(key, keys);
  return (
    `unknown key [${section}] ${key}${near === undefined ? '' : `: did you mean ${near}?`} (known: ` +
    `${keys.join(', ')})`
  );
}

/** One problem line for every section or key of `sections` that `known` does not list. */
export function unknownNames(
  sections: Readonly<Record<string, unknown>>,
  known: KnownKeys,
  removed: RemovedKeys = new Map(),
): string[] {
  const problems: string[] = [];
  for (const [section, body] of Object.entries(sections)) {
    if (typeof body !== 'object' || body === null) {
      problems.push(`"${section}" is outside any section: put it under its [Section] (see config.ini.example)`);
      continue;
    }
    if (!known.has(section)) {
      const near = nearestName(section, [...known.keys()]);
      problems.push(
        `unknown section [${section}]${near === undefined ? '' : `: did you mean [${near}]?`} (known: ` +
          `${[...known.keys()].map((s) => `[${s}]`).join(' ')})`,
      );
      continue;
    }
    const keys = known.get(section) as readonly string[];
    for (const key of Object.keys(body)) {
      if (!keys.includes(key) && removed.get(section)?.has(key) !== true)
        problems.push(unknownKey(section, key, known));
    }
  }
  return problems;
}

export const ENV_PREFIX = 'REGISTRY_';
const ENV_HELP = 'REGISTRY_<SECTION>_<KEY> sets [Section] Key of config.ini';

/**
 * One problem line for every environment variable named REGISTRY_* (in any case) that sets no key
 * of `known`; a removed key's variable is removedNames' to report.
 */
export function unknownEnvNames(
  env: NodeJS.ProcessEnv,
  known: KnownKeys,
  removed: RemovedKeys,
  envName: (section: string, key: string) => string,
): string[] {
  const names = [...known].flatMap(([section, keys]) => keys.map((key) => envName(section, key)));
  const accepted = new Set([
    ...names,
    ...[...removed].flatMap(([section, keys]) => [...keys.keys()].map((key) => envName(section, key))),
  ]);
  const problems: string[] = [];
  for (const name of Object.keys(env).sort()) {
    if (!name.toUpperCase().startsWith(ENV_PREFIX) || accepted.has(name)) continue;
    // Compared without the prefix that all share, which would make any two names look alike.
    const tail = nearestName(
      name.slice(ENV_PREFIX.length),
      names.map((known) => known.slice(ENV_PREFIX.length)),
    );
    const near = tail === undefined ? undefined : `${ENV_PREFIX}${tail}`;
    problems.push(
      near === undefined
        ? `unknown environment variable ${name}: no key of config.ini has this name (${ENV_HELP}, e.g. ` +
            `${names.find((n) => n.endsWith('_DATABASE')) ?? names[0]}: rename the variable or unset it)`
        : `unknown environment variable ${name}: did you mean ${near}? (${ENV_HELP}: rename the variable or unset it)`,
    );
  }
  return problems;
}
