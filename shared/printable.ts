/**
 * Text that names from elsewhere end up in: the CLI's terminal (names from the server's listings
 * and from arguments) and the server's log (paths and user names from clients). A control
 * character in one could break a line in two or drive a terminal (an escape sequence; in C1, a
 * one-byte CSI), and a Unicode bidirectional control reorders how the rest of the line is shown
 * (a log line could seem to name another file or user), so each is shown as '?', as `ls` shows
 * control characters.
 */

// C0, DEL and C1; ALM (U+061C), LRM and RLM (U+200E/F), the line and paragraph separators
// (U+2028/9, line breaks to some viewers), the embeddings and overrides (U+202A–U+202E) and the
// isolates (U+2066–U+2069).
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

export function printable(text: string): string {
  return String(text).replace(UNPRINTABLE, '?');
}

// What JSON.stringify leaves raw that printable() hides: DEL, C1, and the bidi controls and line
// separators. C0 it escapes already.
const RAW_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

/**
 * JSON text (JSON.stringify's) with the characters printable() hides written as `\uXXXX`: the
 * same JSON to a parser, and nothing in it drives the terminal or reorders the line it is read
 * on (`ls --json` of a name holding a C1 CSI, or an RLO, printed to the terminal; serve's JSON log).
 */
export function printableJson(json: string): string {
  return json.replace(RAW_IN_JSON, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** printable() of each line: text of several lines (a stack trace) keeps them. */
export function printableLines(text: string): string {
  return String(text).split('\n').map(printable).join('\n');
}

// Whitespace splits a sentence's words; a quote or backslash could be read as quoting; a lone
// surrogate would be written as U+FFFD, as a real U+FFFD is.
const NEEDS_QUOTES = /[\s"'\\]|[\ud800-\udfff]/u;

/**
 * A name (a path, a user name) as a line of text shows it among other words: printable(), and
 * in double quotes, JSON-escaped (`\"`, `\\`, `\ud800`), when it is empty or holds whitespace, a
 * quote, a backslash or a lone surrogate. `renamed a to b to c` could be "a to b" -> "c" or
 * "a" -> "b to c"; `renamed "a to b" to c` is one. Plain names (`photos/2024/a.jpg`) are left
 * bare so that the lines most logs hold read as before.
 */
export function printableName(name: string): string {
  const shown = printable(name);
  return shown === '' || NEEDS_QUOTES.test(shown) ? JSON.stringify(shown) : shown;
}
