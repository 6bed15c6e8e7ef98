/**
 * shellGlob (cli/shellGlobs.ts): a shell's `[!…]` given to picomatch as `[^…]`, its `( ) | + " $`
 * escaped, a backslash before a letter or digit dropped, an unclosed `[` escaped.
 */
import picomatch from 'picomatch';
import { describe, expect, it } from 'vitest';
import { shellGlob } from '../cli/shellGlobs.js';

describe('shellGlob', () => {
  it.each([
    ['[!a]x', '[^a]x'],
    ['*[!~]', '*[^~]'],
    ['[a][!b-d]', '[a][^b-d]'],
    // A `]` right after the opening is one of the class.
    ['[!]a]x', '[^\\]a]x'],
    ['[]!]', '[\\]!]'],
    // Escaped, inside a class, or no class at all: as it was.
    ['\\[!a]', '\\[!a]'],
    ['[[!]x', '[[!]x'],
    // A `[` no `]` closes is itself (picomatch read `[!]` as the class of `!`).
    ['a[!', 'a\\[!'],
    ['[!]', '\\[!]'],
    ['[\\]', '\\[\\]'],
    ['[[:alpha:]', '\\[[:alpha:]'],
    ['[^a]x', '[^a]x'],
    ['plain.txt', 'plain.txt'],
    // A regular expression's characters are themselves, but in a class or escaped already.
    ['* (1).*', '* \\(1\\).*'],
    ['a+b|c', 'a\\+b\\|c'],
    ['[(+]x', '[(+]x'],
    ['\\(x', '\\(x'],
    ['{a,b}', '{a,b}'],
    ['[[:alpha:]+]x', '[[:alpha:]+]x'],
    ['[^]a]x', '[^\\]a]x'],
    // picomatch dropped a `"` and read `$$` as an end: escaped.
    ['*"draft"*', '*\\"draft\\"*'],
    ['a$$b', 'a\\$\\$b'],
    // A backslash before a letter or digit was the regular expression's (`\d` a digit): the letter.
    ['\\d*', 'd*'],
    ['[\\w]x', '[w]x'],
    ['a\\1', 'a1'],
  ])('%s is %s', (pattern, spelled) => {
    expect(shellGlob(pattern)).toBe(spelled);
  });

  // Read by picomatch as it is read in a shell (`case NAME in PATTERN)`).
  it.each([
    ['*"', ['say "hi"'], ['say hi', 'x']],
    ['*"draft"*', ['a "draft" b.txt'], ['draft.txt', 'a draft b.txt']],
    ['$$*', ['$$.pid'], ['$', '$.pid']],
    ['\\d*', ['d1'], ['1', '5d']],
    ['x\\w', ['xw'], ['xa', 'x_']],
    ['a\\b', ['ab'], ['a']],
    ['[!]', ['[!]'], ['!']],
    ['[\\]]x', [']x'], ['\\x', 'x']],
    ['[!]a]*', ['b', 'bc'], [']', 'a', ']x']],
    ['x{*', ['x{1', 'x{'], ['x', 'x1']],
    ['{a,{b,c}*', ['{a,b1', '{a,c'], ['a', 'b']],
    ['{a,b}[{]*', ['a{', 'b{x'], ['a', '{']],
  ])('%s matches what a shell matches', (pattern, matching, others) => {
    const matches = picomatch(shellGlob(pattern), { dot: true, noextglob: true, nonegate: true });
    for (const name of matching) expect(matches(name), name).toBe(true);
    for (const name of others) expect(matches(name), name).toBe(false);
  });
});
