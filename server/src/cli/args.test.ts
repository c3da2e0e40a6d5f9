import { describe, expect, it } from 'vitest';
import { parseArgs } from './args.js';

describe('command-line arguments', () => {
  const valued = new Set(['config', 'registry']);
  const flags = new Set(['json']);

  it('reads --name value, --name=value and flags, keeping everything after the first =', () => {
    const args = parseArgs(['peers', '--registry=ws://h/?a=b', '--config', 'c.ini', '--json', 'extra'], valued, flags);
    expect(args.command).toBe('peers');
    expect(args.positional).toEqual(['extra']);
    expect(args.options.get('registry')).toBe('ws://h/?a=b');
    expect(args.options.get('config')).toBe('c.ini');
    expect(args.options.get('json')).toBe(true);
  });

  it('refuses unknown options and options without their value', () => {
    expect(() => parseArgs(['serve', '--nope'], valued, flags)).toThrow(expect.objectContaining({ code: 'USAGE' }));
    expect(() => parseArgs(['serve', '--config'], valued, flags)).toThrow('--config needs a value');
  });
});
