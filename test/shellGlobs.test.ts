/** shellGlob (cli/shellGlobs.ts): a shell's `[!…]` given to picomatch as `[^…]`, its `( ) | +` escaped, nothing else changed. */
import { describe, expect, it } from 'vitest';
import { shellGlob } from '../cli/shellGlobs.js';

describe('shellGlob', () => {
  it.each([
    ['[!a]x', '[^a]x'],
    ['*[!~]', '*[^~]'],
    ['[a][!b-d]', '[a][^b-d]'],
    // A `]` right after the opening is one of the class.
    ['[!]a]x', '[^]a]x'],
    ['[]!]', '[]!]'],
    // Escaped, inside a class, or no class at all: as it was.
    ['\\[!a]', '\\[!a]'],
    ['[[!]x', '[[!]x'],
    ['a[!', 'a[!'],
    ['[!]', '[!]'],
    ['[^a]x', '[^a]x'],
    ['plain.txt', 'plain.txt'],
    // A regular expression's characters are themselves, but in a class or escaped already.
    ['* (1).*', '* \\(1\\).*'],
    ['a+b|c', 'a\\+b\\|c'],
    ['[(+]x', '[(+]x'],
    ['\\(x', '\\(x'],
    ['{a,b}', '{a,b}'],
  ])('%s is %s', (pattern, spelled) => {
    expect(shellGlob(pattern)).toBe(spelled);
  });
});
