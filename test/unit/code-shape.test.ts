/**
 * The code-shape rules (CONTRIBUTING.md, "Code shape and documents"): no source file of the server
 * package over 400 lines and no function over 100, tests excepted. Checked here so that they cannot
 * drift.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');
const SRC = join(ROOT, 'server/src');
const MAX_FILE_LINES = 400;
const MAX_FUNCTION_LINES = 100;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    const isSource =
      entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') && !entry.name.endsWith('.contract.ts');
    return isSource ? [path] : [];
  });
}

function lineOf(file: ts.SourceFile, position: number): number {
  return file.getLineAndCharacterOfPosition(position).line + 1;
}

/** Every function-like node of a file with its name and length in lines. */
function functionLengths(path: string): Array<{ name: string; lines: number }> {
  const file = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true);
  const found: Array<{ name: string; lines: number }> = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body !== undefined) {
      const name =
        node.name !== undefined && ts.isIdentifier(node.name)
          ? node.name.text
          : `<anonymous at line ${lineOf(file, node.getStart())}>`;
      found.push({ name, lines: lineOf(file, node.getEnd()) - lineOf(file, node.getStart()) + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found;
}

describe('the server package source', () => {
  const files = sourceFiles(SRC);

  it('is found (the check is not vacuous)', () => {
    expect(files.length).toBeGreaterThan(30);
  });

  it(`has no file longer than ${MAX_FILE_LINES} lines`, () => {
    const long = files
      .map((path) => ({ path: relative(ROOT, path), lines: readFileSync(path, 'utf8').split('\n').length }))
      .filter((f) => f.lines > MAX_FILE_LINES);
    expect(long).toEqual([]);
  });

  it(`has no function longer than ${MAX_FUNCTION_LINES} lines`, () => {
    const long = files.flatMap((path) =>
      functionLengths(path)
        .filter((f) => f.lines > MAX_FUNCTION_LINES)
        .map((f) => `${relative(ROOT, path)}: ${f.name} (${f.lines} lines)`),
    );
    expect(long).toEqual([]);
  });
});

describe('every TypeScript and JavaScript file the repository tracks', () => {
  const MAX_LINE = 120; // biome.json's lineWidth: the formatter keeps code within it, not strings or comments
  const tracked = execFileSync('git', ['ls-files', '*.ts', '*.mjs', '*.js'], { cwd: ROOT, encoding: 'utf8' })
    .split('\n')
    .filter((path) => path !== '');

  it('is found (the check is not vacuous)', () => {
    expect(tracked.length).toBeGreaterThan(150);
  });

  it(`has no line longer than ${MAX_LINE} characters`, () => {
    const long = tracked.flatMap((path) =>
      readFileSync(join(ROOT, path), 'utf8')
        .split('\n')
        .flatMap((line, index) => (line.length > MAX_LINE ? [`${path}:${index + 1} (${line.length})`] : [])),
    );
    expect(long).toEqual([]);
  });
});
