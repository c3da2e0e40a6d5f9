/**
 * Every link in the repository's Markdown resolves, and none leaves the repository.
 *
 * The rule: the documents are written here and link only to each other and to the repository's
 * files. A link is a relative path (a file or folder that git tracks, or would track: untracked
 * files that are not ignored count, so a new document is checked before its first commit),
 * optionally with a `#anchor`, or an `#anchor` alone. An anchor into a Markdown file must name one
 * of its headings, as GitHub makes their ids (lower case; punctuation other than `-` and `_`
 * dropped; spaces become `-`; a repeated heading gets `-1`, `-2`, ...), or an `id`/`name` of an
 * HTML element in it; an anchor into another file may only be a line (`#L10`, `#L10-L20`). No link
 * has a URL scheme (http, https, mailto, ...), and no bare `http://`, `https://` or `www.` address
 * stands in the prose, since GitHub would turn it into a link: a document that needs an outside
 * source names it in words or in a code span.
 *
 * What counts as a link: inline links and images `[text](target)`, reference definitions
 * `[label]: target`, and autolinks `<scheme:...>`, outside fenced code blocks and code spans.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');

/** The repository's files, relative to ROOT with `/`: tracked, plus untracked ones git does not ignore. */
function repositoryFiles(): Set<string> {
  let listing: string;
  try {
    listing = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
      cwd: ROOT,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (err) {
    throw new Error('git ls-files failed: this test lists the repository with git (run it in a git checkout)', {
      cause: err,
    });
  }
  return new Set(listing.split('\0').filter((path) => path !== ''));
}

/** Every folder that holds a repository file. */
function foldersOf(files: Iterable<string>): Set<string> {
  const folders = new Set<string>();
  for (const file of files) {
    for (let folder = dirname(file); folder !== '.'; folder = dirname(folder)) folders.add(folder);
  }
  return folders;
}

/** The lines of a Markdown text, those of fenced code blocks blanked out (line numbers kept). */
function outsideFences(markdown: string): string[] {
  let fence: string | null = null;
  return markdown.split('\n').map((line) => {
    const marker = /^ {0,3}(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence !== null) {
      if (marker !== undefined && marker[0] === fence[0] && marker.length >= fence.length && line.trim() === marker)
        fence = null;
      return '';
    }
    if (marker !== undefined) {
      fence = marker;
      return '';
    }
    return line;
  });
}

/** The prose: no fenced code blocks, no code spans. */
function prose(markdown: string): string[] {
  return outsideFences(markdown).map((line) => line.replace(/(`+)(?:(?!\1)[\s\S])*?\1/g, ''));
}

/** GitHub's id for a heading's text (github-slugger): inline markup first reduced to its text. */
function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/[`*]/g, '')
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
}

/** The anchors a Markdown file offers: its headings' ids (repeats numbered) and HTML ids and names. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of outsideFences(markdown)) {
    const heading = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(line)?.[1];
    if (heading !== undefined) {
      const base = slug(heading);
      const count = seen.get(base) ?? 0;
      seen.set(base, count + 1);
      anchors.add(count === 0 ? base : `${base}-${count}`);
    }
    for (const match of line.matchAll(/<[a-z][^>]*\s(?:id|name)="([^"]+)"/gi)) anchors.add(match[1] as string);
  }
  return anchors;
}

interface Link {
  readonly file: string;
  readonly line: number;
  readonly target: string;
}

/** Every link target of a Markdown file, with its line. */
function linksOf(file: string, markdown: string): Link[] {
  const links: Link[] = [];
  prose(markdown).forEach((text, index) => {
    const add = (target: string): void => void links.push({ file, line: index + 1, target });
    // [text](target "title") and ![alt](<target>); the text may hold one level of brackets.
    for (const match of text.matchAll(/\[(?:[^[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+"[^"]*")?\s*\)/g)) {
      add((match[1] as string).replace(/^<(.*)>$/, '$1'));
    }
    const definition = /^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)/.exec(text)?.[1];
    if (definition !== undefined) add(definition.replace(/^<(.*)>$/, '$1'));
    for (const match of text.matchAll(/<([a-z][a-z0-9+.-]*:[^\s<>]*)>/gi)) add(match[1] as string);
  });
  return links;
}

/** Why a link does not resolve, or null when it does. */
function problemOf(
  link: Link,
  files: Set<string>,
  folders: Set<string>,
  anchors: (file: string) => Set<string>,
): string | null {
  const { target } = link;
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return 'points outside the repository (a URL scheme)';
  if (target === '') return 'is empty';
  const hash = target.indexOf('#');
  const path = hash === -1 ? target : target.slice(0, hash);
  const anchor = hash === -1 ? null : decodeURIComponent(target.slice(hash + 1));
  if (path.startsWith('/')) return 'is absolute: use a path relative to the document';
  const resolved =
    path === '' ? link.file : normalize(join(dirname(link.file), decodeURIComponent(path))).replace(/\/$/, '');
  if (resolved.startsWith('..')) return 'leaves the repository';
  const isFile = files.has(resolved);
  if (!isFile && !folders.has(resolved)) return `names ${resolved}, which is not in the repository`;
  if (anchor === null) return null;
  if (!isFile) return 'has an anchor into a folder';
  if (resolved.endsWith('.md'))
    return anchors(resolved).has(anchor) ? null : `names #${anchor}, which ${resolved} has no heading for`;
  return /^L\d+(-L\d+)?$/.test(anchor)
    ? null
    : `names #${anchor} in ${resolved}, which is not a Markdown file (only #L<line> fits)`;
}

const files = repositoryFiles();
const markdownFiles = [...files].filter((file) => file.endsWith('.md')).sort();
const text = new Map(markdownFiles.map((file) => [file, readFileSync(join(ROOT, file), 'utf8')]));
const anchorCache = new Map<string, Set<string>>();
const anchors = (file: string): Set<string> => {
  let found = anchorCache.get(file);
  if (found === undefined) {
    found = anchorsOf(text.get(file) ?? readFileSync(join(ROOT, file), 'utf8'));
    anchorCache.set(file, found);
  }
  return found;
};

describe("the repository's Markdown", () => {
  it('is found, with links in it (the check is not vacuous)', () => {
    expect(markdownFiles).toEqual(
      expect.arrayContaining(['README.md', 'SECURITY.md', 'CONTRIBUTING.md', 'docs/PROTOCOL.md', 'docs/CLIENT.md']),
    );
    expect(markdownFiles.flatMap((file) => linksOf(file, text.get(file) ?? '')).length).toBeGreaterThan(50);
  });

  it('links only to files, folders and headings that exist in the repository', () => {
    const folders = foldersOf(files);
    const broken = markdownFiles.flatMap((file) =>
      linksOf(file, text.get(file) ?? '').flatMap((link) => {
        const problem = problemOf(link, files, folders, anchors);
        return problem === null ? [] : [`${link.file}:${link.line}: (${link.target}) ${problem}`];
      }),
    );
    expect(broken).toEqual([]);
  });

  it('has no bare web address in its prose (GitHub would make it a link)', () => {
    const bare = markdownFiles.flatMap((file) =>
      prose(text.get(file) ?? '').flatMap((line, index) =>
        /\b(?:https?:\/\/|www\.[a-z0-9-]+\.)/i.test(line) ? [`${file}:${index + 1}: ${line.trim()}`] : [],
      ),
    );
    expect(bare).toEqual([]);
  });
});

describe('the link checker', () => {
  const sampleFiles = new Set(['README.md', 'docs/A.md', 'docs/b.yaml']);
  const sampleFolders = foldersOf(sampleFiles);
  const pages = new Map([
    [
      'README.md',
      '# Title\n## Run it on a VPS (Docker)\n## `/healthz` of an instance\n## Notes\n## Notes\n```sh\n# not a ' +
        'heading\n```\n',
    ],
    ['docs/A.md', '# A\n## Limits behind Onionbalance 0.2.2\n## What "healthy" means\n'],
  ]);
  const pageAnchors = (file: string): Set<string> => anchorsOf(pages.get(file) ?? '');
  const check = (file: string, target: string): string | null =>
    problemOf({ file, line: 1, target }, sampleFiles, sampleFolders, pageAnchors);

  it(
    "makes heading ids as GitHub does: punctuation dropped, spaces to '-', repeats numbered, code " + 'blocks skipped',
    () => {
      expect([...pageAnchors('README.md')]).toEqual([
        'title',
        'run-it-on-a-vps-docker',
        'healthz-of-an-instance',
        'notes',
        'notes-1',
      ]);
      expect([...pageAnchors('docs/A.md')]).toEqual(['a', 'limits-behind-onionbalance-022', 'what-healthy-means']);
    },
  );

  it('resolves relative files, folders and anchors, and refuses what is not there', () => {
    expect(check('README.md', 'docs/A.md#what-healthy-means')).toBeNull();
    expect(check('docs/A.md', '../README.md#notes-1')).toBeNull();
    expect(check('docs/A.md', 'b.yaml')).toBeNull();
    expect(check('README.md', 'docs/')).toBeNull();
    expect(check('README.md', '#run-it-on-a-vps-docker')).toBeNull();
    expect(check('README.md', '#not-a-heading')).toContain('has no heading for');
    expect(check('README.md', 'docs/missing.md')).toContain('not in the repository');
    expect(check('docs/A.md', '../../elsewhere.md')).toBe('leaves the repository');
    expect(check('docs/A.md', 'b.yaml#channels')).toContain('not a Markdown file');
  });

  it('refuses every URL scheme', () => {
    for (const target of ['https://example.org/', 'http://example.org', 'mailto:someone@example.org']) {
      expect(check('README.md', target)).toContain('outside the repository');
    }
  });

  it('finds inline links, images, reference definitions and autolinks, but not in code', () => {
    const markdown =
      'See [the `docs`](docs/A.md) and ![chart](<docs/b.yaml> "a chart").\n[ref]: ' +
      'README.md\n<https://example.org>\n`[code](not-a-link)`\n```\n[fenced](not-a-link)\n```\n';
    expect(linksOf('README.md', markdown).map((link) => link.target)).toEqual([
      'docs/A.md',
      'docs/b.yaml',
      'README.md',
      'https://example.org',
    ]);
  });
});
