import { describe, expect, it } from 'vitest';
import { inTerminalForeground } from '../cli/passwordPrompt.js';

/** A /proc/self/stat line (proc(5)) for a process named `name` in group `pgrp`, its terminal's foreground `tpgid`. */
const statLine = (name: string, pgrp: number, tpgid: number): string =>
  `4242 (${name}) S 4200 ${pgrp} 4100 34816 ${tpgid} 4194560 1 2 3 4\n`;

describe('inTerminalForeground', () => {
  it('is true in the terminal foreground group and false in another', () => {
    expect(inTerminalForeground(() => statLine('node', 4242, 4242))).toBe(true);
    expect(inTerminalForeground(() => statLine('node', 4242, 4100))).toBe(false);
  });

  it('reads the fields after the last ) of a name holding spaces and parentheses', () => {
    expect(inTerminalForeground(() => statLine('a) S 1 9 9 9 9 (b', 4242, 4100))).toBe(false);
    expect(inTerminalForeground(() => statLine('a) S 1 9 9 9 9 (b', 4242, 4242))).toBe(true);
  });

  it('is true without a terminal (tpgid -1) and where /proc cannot be read', () => {
    expect(inTerminalForeground(() => statLine('node', 4242, -1))).toBe(true);
    expect(
      inTerminalForeground(() => {
        throw new Error('ENOENT');
      }),
    ).toBe(true);
  });
});
