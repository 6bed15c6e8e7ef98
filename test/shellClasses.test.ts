/** withShellNegation (cli/shellClasses.ts): a shell's `[!…]` given to picomatch as `[^…]`, nothing else changed. */
import { describe, expect, it } from 'vitest';
import { withShellNegation } from '../cli/shellClasses.js';

describe('withShellNegation', () => {
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
  ])('%s is %s', (pattern, spelled) => {
    expect(withShellNegation(pattern)).toBe(spelled);
  });
});
