/**
 * A shell's glob (sh, fnmatch, tar, rsync's wildmatch) as picomatch reads one. picomatch spells
 * the class of what is not listed `[^…]` and reads `[!a]` as the class of `!` and `a`, so `[!a]*`
 * matched the names starting with `a`, the very ones it means to leave out. And with extglobs off
 * it still reads `(`, `)`, `|` and `+` as a regular expression's: `*(1).jpg` matched IMG1.jpg and
 * not IMG(1).jpg, `*|x` every name. In a shell they are themselves: escaped here. Escaped
 * already (`\[!`, `\(`), or inside a class (`[[!]`, `[(]`), a character stays what it is; a `]`
 * right after the opening is one of the class (`[!]a]`), as in a shell.
 */
export function shellGlob(pattern: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') {
      out += pattern.slice(i, i + 2);
      i++;
    } else if (!inClass && c === '[' && closes(pattern, i)) {
      inClass = true;
      const negated = pattern[i + 1] === '!';
      out += negated ? '[^' : '[';
      if (negated) i++;
      if (pattern[i + 1] === ']') {
        out += ']';
        i++;
      }
    } else if (!inClass && LITERAL.has(c)) {
      out += `\\${c}`;
    } else {
      if (c === ']') inClass = false;
      out += c;
    }
  }
  return out;
}

/** What picomatch reads as a regular expression's, outside a class, and a shell as itself. */
const LITERAL: ReadonlySet<string> = new Set(['(', ')', '|', '+']);

/** Whether the `[` at `open` starts a class: a `]` closes it after one character of it at least. */
function closes(pattern: string, open: number): boolean {
  const first = pattern[open + 1] === '!' ? open + 2 : open + 1;
  return pattern.indexOf(']', first + 1) !== -1;
}
