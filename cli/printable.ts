/**
 * Text for the terminal: names come from the server's listings and from arguments, and a control
 * character in one could break a line in two or drive the terminal (an escape sequence), so each
 * is shown as '?', as `ls` shows it.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/g;

export function printable(text: string): string {
  return String(text).replace(CONTROL_CHARACTERS, '?');
}
