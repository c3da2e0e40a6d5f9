/**
 * docs/CONFIGURATION.md's "Every key" table is the operator's reference: it lists exactly the keys
 * the parser accepts, each as config.ini.example ships it, with its environment variable and, for
 * the [Registry] limits, the bounds the parser enforces. So neither the page nor the example can
 * drift from the parser.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { envName, KNOWN_KEYS, LIMIT_KEYS } from '../../server/src/server/config/config.js';

const ROOT = join(import.meta.dirname, '../..');
const PAGE = readFileSync(join(ROOT, 'docs/CONFIGURATION.md'), 'utf8');
const EXAMPLE = readFileSync(join(ROOT, 'config.ini.example'), 'utf8');

interface Row {
  readonly shipped: string;
  readonly env: string;
  readonly accepted: string;
}

/** The table's rows by `[Section] Key`. */
function table(): Map<string, Row> {
  const section = PAGE.split('\n## Every key\n')[1]?.split('\n## ')[0] ?? '';
  const rows = new Map<string, Row>();
  for (const line of section.split('\n')) {
    const cells = /^\| `(\[\w+\] \w+)` \| (.*) \| `(\w+)` \| (.*) \|$/.exec(line);
    if (cells !== null) rows.set(cells[1]!, { shipped: cells[2]!, env: cells[3]!, accepted: cells[4]!.trim() });
  }
  return rows;
}

/** config.ini.example's keys as it ships them: set (`value`), or commented out (an example). */
function example(): Map<string, string> {
  const shipped = new Map<string, string>();
  let section = '';
  for (const line of EXAMPLE.split('\n')) {
    const header = /^\[(\w+)\]/.exec(line);
    if (header !== null) section = header[1]!;
    const entry = /^(;\s*)?([A-Za-z]+)\s*=\s*(.*)$/.exec(line);
    if (entry === null || section === '') continue;
    const value = entry[3]!.trim();
    shipped.set(`[${section}] ${entry[2]}`, entry[1] === undefined ? `\`${value}\`` : `unset (e.g. \`${value}\`)`);
  }
  return shipped;
}

const parserKeys = [...KNOWN_KEYS].flatMap(([section, keys]) => keys.map((key) => `[${section}] ${key}`));

describe("docs/CONFIGURATION.md's table of every key", () => {
  const rows = table();

  it('is found', () => {
    expect(rows.size).toBeGreaterThan(20);
  });

  it('lists exactly the keys the parser accepts', () => {
    expect([...rows.keys()].sort()).toEqual([...parserKeys].sort());
  });

  it('shows each key as config.ini.example ships it, and the example holds every key', () => {
    const shipped = example();
    expect(parserKeys.filter((key) => !shipped.has(key))).toEqual([]);
    for (const [key, row] of rows) expect(row.shipped, key).toBe(shipped.get(key));
  });

  it("names each key's environment variable", () => {
    for (const [key, row] of rows) {
      const [, section, name] = /^\[(\w+)\] (\w+)$/.exec(key)!;
      expect(row.env, key).toBe(envName(section!, name!));
    }
  });

  it('gives each [Registry] limit the bounds the parser enforces', () => {
    const format = (n: number): string => n.toLocaleString('en-US');
    for (const spec of LIMIT_KEYS) {
      expect(rows.get(`[Registry] ${spec.key}`)?.accepted, spec.key).toBe(`${format(spec.min)} to ${format(spec.max)}`);
    }
  });
});
