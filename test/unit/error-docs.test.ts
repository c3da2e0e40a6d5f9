/**
 * docs/PROTOCOL.md's error table is the one place client authors read the codes: it must list
 * exactly the protocol codes of the server's catalog, each with the close code the catalog gives.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOG, isProtocolCode, type AnyErrorCode } from '../../server/src/protocol/errors.js';

const PROTOCOL_MD = readFileSync(join(import.meta.dirname, '../../docs/PROTOCOL.md'), 'utf8');

/** Rows of the table under "## Error codes": code -> its close column and its text. */
function errorTable(): Map<string, { close: string; when: string }> {
  const section = PROTOCOL_MD.split('\n## Error codes\n')[1]?.split('\n## ')[0] ?? '';
  const rows = new Map<string, { close: string; when: string }>();
  for (const line of section.split('\n')) {
    const cells = /^\| `([A-Z_]+)` \| (.*) \|([^|]*)\|$/.exec(line);
    if (cells !== null) rows.set(cells[1] as string, { when: cells[2] as string, close: (cells[3] as string).trim() });
  }
  return rows;
}

const protocolCodes = (Object.keys(ERROR_CATALOG) as AnyErrorCode[]).filter(isProtocolCode);

describe("docs/PROTOCOL.md's error table", () => {
  const table = errorTable();

  it('is found', () => {
    expect(table.size).toBeGreaterThan(10);
  });

  it('lists every protocol code of the catalog', () => {
    expect(protocolCodes.filter((code) => !table.has(code))).toEqual([]);
  });

  it('lists no code the catalog does not have, unless it is marked as not yet implemented', () => {
    const unknown = [...table].filter(
      ([code, row]) => !(protocolCodes as string[]).includes(code) && !row.when.includes('not yet implemented'),
    );
    expect(unknown.map(([code]) => code)).toEqual([]);
  });

  it('gives each code the close code the catalog gives it', () => {
    for (const code of protocolCodes) {
      const closeCode = ERROR_CATALOG[code].closeCode;
      if (closeCode !== null) expect(table.get(code)?.close, code).toContain(String(closeCode));
    }
  });
});
