/**
 * Which nicknames a reservation covers (PROTOCOL.md "Moderation": a name or a pattern, and the
 * nicknames that differ from it only by characters that look alike). The look-alike table is fixed
 * and documented in docs/OPERATIONS.md ("Reserving nicknames"):
 *   case ignored; `_` `-` `.` ignored; 0→o; 1, i, l→l; 3→e; 4→a; 5→s; 7→t; 8→b; rn→m; vv→w.
 * A pattern is a case-insensitive glob: `*` any run of characters (none included), `?` one.
 * A nickname is covered when its folded form matches the folded pattern, or its lowercase form
 * matches the lowercase pattern (so that `r*` still covers `rnd`, whose folded form is `md`).
 */
import { NICKNAME_PATTERN } from '../../protocol/messages.js';

const SINGLE: Readonly<Record<string, string>> = {
  '0': 'o',
  '1': 'l',
  i: 'l',
  '3': 'e',
  '4': 'a',
  '5': 's',
  '7': 't',
  '8': 'b',
};

/** The form look-alikes share: `adm1n`, `ADMIN` and `a.d.m.i.n` all fold to `admln`. */
export function foldNickname(text: string): string {
  return text
    .toLowerCase()
    .replace(/[_.-]/g, '')
    .replace(/[013-578i]/g, (c) => SINGLE[c] ?? c)
    .replace(/rn/g, 'm')
    .replace(/vv/g, 'w');
}

/** Why `pattern` cannot be a reservation, or null when it can. */
export function patternProblem(pattern: string): string | null {
  if (!/^[A-Za-z0-9_.*?-]{1,64}$/.test(pattern))
    return 'a reservation is a nickname or a glob of nickname characters (A-Z a-z 0-9 _ . -) with * and ?, at most 64';
  if (!/[A-Za-z0-9]/.test(pattern))
    return 'a pattern needs at least one letter or digit: it would reserve every nickname';
  if (!/[*?]/.test(pattern) && !NICKNAME_PATTERN.test(pattern))
    return (
      'not a valid nickname (1-32 of A-Z a-z 0-9 _ . -, starting with a letter or digit); use * or ? for ' + 'a pattern'
    );
  return null;
}

function globRegex(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\-]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

/** A reservation's pattern, compiled once. */
export class NicknamePattern {
  readonly pattern: string;
  private readonly plain: RegExp;
  private readonly folded: RegExp;

  constructor(pattern: string) {
    this.pattern = pattern.toLowerCase();
    this.plain = globRegex(this.pattern);
    // Folding a glob folds its letters; * and ? are kept as they are.
    this.folded = globRegex(
      this.pattern
        .split(/([*?])/)
        .map((part) => (part === '*' || part === '?' ? part : foldNickname(part)))
        .join(''),
    );
  }

  covers(nickname: string): boolean {
    return this.plain.test(nickname.toLowerCase()) || this.folded.test(foldNickname(nickname));
  }
}
