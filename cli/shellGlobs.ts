/**
 * A shell's glob (sh, fnmatch, tar, rsync's wildmatch) as picomatch reads one. picomatch spells
 * the class of what is not listed `[^…]` and reads `[!a]` as the class of `!` and `a`, so `[!a]*`
 * matched the names starting with `a`, the very ones it means to leave out. And with extglobs off
 * it still reads `(`, `)`, `|` and `+` as a regular expression's: `*(1).jpg` matched IMG1.jpg and
 * not IMG(1).jpg, `*|x` every name. It drops a `"` (`*"` matched every name, `*"draft"*` draft.txt)
 * and reads `$$` as an end. In a shell they are themselves: escaped here. A backslash before a
 * letter or digit is passed on to the regular expression too (`\d` a digit, `\b` a word's edge):
 * in a shell it is that letter, so it goes. Escaped already (`\[!`, `\(`), or inside a class
 * (`[[!]`, `[(]`), a character stays what it is; a `]` right after the opening is one of the
 * class (`[!]a]`), and a `[` that no `]` closes is itself (`[!]`, `a[b`), as in a shell; so
 * is a `{` that no `}` closes.
 */
export function shellGlob(pattern: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') {
      out += escaped(pattern[i + 1]);
      i++;
    } else if (c === '[') {
      const end = classEnd(pattern, i);
      if (end === undefined) out += '\\[';
      else {
        out += shellClass(pattern.slice(i + 1, end));
        i = end;
      }
    } else if (c === '{' && !braceCloses(pattern, i)) out += '\\{';
    else out += LITERAL.has(c) ? `\\${c}` : c;
  }
  return out;
}

/**
 * Whether the `{` at `open` has its `}` (`{a,b}` is expanded, as the remote patterns document).
 * One that has none is itself, as in a shell: picomatch matched nothing with it (`x{*` not x{1).
 */
function braceCloses(pattern: string, open: number): boolean {
  let depth = 0;
  for (let i = open; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') i++;
    else if (c === '[') i = classEnd(pattern, i) ?? i;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return true;
  }
  return false;
}

/** What picomatch reads otherwise, outside a class, and a shell as itself. */
const LITERAL: ReadonlySet<string> = new Set(['(', ')', '|', '+', '"', '$']);

/** `\` then `next` (undefined: the pattern's end) as picomatch reads the shell's meaning. */
function escaped(next: string | undefined): string {
  if (next === undefined) return '\\';
  return /[A-Za-z0-9]/.test(next) ? next : `\\${next}`;
}

/**
 * Where the class opened at `open` ends (its `]`), or undefined when none does: a `]` first (after
 * a `!` or `^`) is one of it, an escaped one too, and so is the one that ends `[:alpha:]`.
 */
function classEnd(pattern: string, open: number): number | undefined {
  let i = open + 1;
  if (pattern[i] === '!' || pattern[i] === '^') i++;
  if (pattern[i] === ']') i++;
  for (; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') i++;
    else if (c === ']') return i;
    else if (c === '[' && ':.='.includes(pattern[i + 1] ?? '-')) {
      const close = pattern.indexOf(`${pattern[i + 1]}]`, i + 2);
      if (close !== -1) i = close + 1;
    }
  }
  return undefined;
}

/** A class's inside (`body`, between its brackets) as picomatch reads it. */
function shellClass(body: string): string {
  let out = '[';
  let i = 0;
  if (body[0] === '!' || body[0] === '^') {
    out += '^';
    i++;
  }
  if (body[i] === ']') {
    out += '\\]';
    i++;
  }
  for (; i < body.length; i++) {
    if (body[i] === '\\') {
      out += escaped(body[i + 1]);
      i++;
    } else out += body[i];
  }
  return `${out}]`;
}
