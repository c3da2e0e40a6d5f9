/**
 * The serving process's V8 settings (heap-tuning.ts), checked in a child process of their own: the
 * pattern of a registration burst followed by lookups, reduced to ws's receiver's one habit that
 * matters (a fresh `[]` of fragments after every message), with a young generation of 1 MB so that
 * every scavenge is one of a full-size young generation, where V8 makes its pretenuring decisions.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { flagsMissingFrom, SERVING_V8_FLAGS } from './heap-tuning.js';

const TUNING = pathToFileURL(fileURLToPath(new URL('./heap-tuning.ts', import.meta.url))).href;

/** How far old space grew, at its peak, while 400,000 short-lived messages passed through 128 receivers. */
const BURST_THEN_MESSAGES = `
import { getHeapSpaceStatistics } from 'node:v8';
if (process.argv[1] === 'tuned') (await import(${JSON.stringify(TUNING)})).tuneHeapForServing();
class Receiver {
  constructor() { this.fragments = []; }
  message(data) { this.fragments.push(data); const done = this.fragments; this.fragments = []; return done.length; }
}
const oldSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_used_size;
// The burst: 5,000 connections each send one message (their register) and stay open.
const held = [];
let other;
for (let i = 0; i < 5000; i += 1) {
  const receiver = new Receiver();
  receiver.message(Buffer.from('register'));
  held.push(receiver);
  for (let j = 0; j < 20; j += 1) other = { j, text: 'x' + j }; // the rest of a registration's garbage
}
// The lookups: 128 busy connections, every message dead as soon as it was answered.
const busy = Array.from({ length: 128 }, () => new Receiver());
// Old space is sampled as the messages pass and its peak kept: a mark-compact near the end would
// collect the promoted messages (dead by then) and hide how far they had filled it.
const before = oldSpace();
let peak = before;
let messages = 0;
for (let i = 0; i < 400000; i += 1) {
  messages += busy[i & 127].message(Buffer.from('{"type":"lookup","id":1}'));
  if ((i & 1023) === 0) peak = Math.max(peak, oldSpace());
}
peak = Math.max(peak, oldSpace());
console.log(JSON.stringify({ oldSpaceGrowth: peak - before, messages, held: held.length, other: other.j }));
`;

/** 'tuned': set at runtime (the fallback); 'command-line': given to node as the image and the bin do. */
function run(mode: 'tuned' | 'untuned' | 'command-line'): { oldSpaceGrowth: number; output: string } {
  const flags = mode === 'command-line' ? SERVING_V8_FLAGS : [];
  const child = spawnSync(
    process.execPath,
    ['--max-semi-space-size=1', ...flags, '--input-type=module', '-e', BURST_THEN_MESSAGES, mode],
    { encoding: 'utf8', timeout: 60_000 },
  );
  const output = `${child.stdout}${child.stderr}`;
  if (child.status !== 0) throw new Error(`the child failed (${child.status ?? child.signal}): ${output}`);
  const last = child.stdout.trim().split('\n').at(-1) ?? '';
  return { oldSpaceGrowth: (JSON.parse(last) as { oldSpaceGrowth: number }).oldSpaceGrowth, output };
}

const MB = 1024 * 1024;

describe('the serving process turns V8 allocation-site pretenuring off', () => {
  it('names only flags this V8 knows (setFlagsFromString ignores the others, saying so)', () => {
    expect(SERVING_V8_FLAGS).toContain('--no-allocation-site-pretenuring');
    expect(run('tuned').output).not.toMatch(/unrecognized flag/i);
  });

  it(
    'without it, messages after a burst of long-lived ones are born old and fill old space (the trap, still in this ' +
      'Node: if not, re-measure with make bench-cluster and drop the flag)',
    () => {
      expect(run('untuned').oldSpaceGrowth).toBeGreaterThan(4 * MB);
    },
  );

  it('with it set at runtime (the fallback), the same messages die young', () => {
    expect(run('tuned').oldSpaceGrowth).toBeLessThan(1 * MB);
  });

  it("with it on node's command line (the image's ENTRYPOINT, the bin's shebang), the same messages die young", () => {
    expect(run('command-line').oldSpaceGrowth).toBeLessThan(1 * MB);
  });

  it('sets at runtime only the flags node was started without', () => {
    expect(flagsMissingFrom(['--max-old-space-size=320'])).toEqual(['--no-allocation-site-pretenuring']);
    expect(flagsMissingFrom(['--max-old-space-size=320', '--no-allocation-site-pretenuring'])).toEqual([]);
  });
});
