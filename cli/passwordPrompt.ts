/**
 * Reading a password without it ever being in argv: a prompt on the terminal that does not echo
 * what is typed, or the first line of stdin when it is not a terminal (`echo "$PW" | muxftp user add …`).
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { ReadStream } from 'node:tty';
import { CliError } from './cliError.js';
import { exitCodeFor, handleSignals } from './interrupt.js';

/**
 * The process's terminal when stdin is not it (`tar c . | muxftp --user alice put - site.tar`),
 * as ssh and sudo ask there; undefined without one (a service, a CI job, `setsid`).
 */
export function openControllingTerminal(): ReadStream | undefined {
  try {
    return new ReadStream(openSync('/dev/tty', 'r'));
  } catch {
    return undefined;
  }
}

/** Whether the process has a terminal to ask on (openControllingTerminal would give one). */
export function hasControllingTerminal(): boolean {
  try {
    closeSync(openSync('/dev/tty', 'r'));
    return true;
  } catch {
    return false;
  }
}

/**
 * False when the process is in a background process group of its terminal: `timeout` runs its
 * command in one (unless --foreground), as a shell runs `cmd &`. Turning echo off there stops the
 * process (SIGTTOU) before the prompt shows, and for good under `timeout`, whose SIGTERM and
 * SIGCONT only stop it again. True where it cannot be told (no /proc: not Linux).
 */
export function inTerminalForeground(
  procStat: () => string = () => readFileSync('/proc/self/stat', 'latin1'),
): boolean {
  let text: string;
  try {
    text = procStat();
  } catch {
    return true;
  }
  // proc(5): after the name in parentheses (which may hold spaces or ')'): state, ppid, pgrp,
  // session, tty_nr, tpgid (the terminal's foreground group; -1 without a terminal).
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const group = Number(fields[2]);
  const foreground = Number(fields[5]);
  if (!Number.isInteger(group) || !Number.isInteger(foreground) || foreground <= 0) return true;
  return group === foreground;
}

/**
 * Where a prompt shows: stderr when it is the terminal, else the terminal itself, as ssh and sudo
 * ask there. With stderr sent elsewhere (`2>log`) the prompt went there, and the command waited
 * for a password it had not shown it was asking for.
 */
function promptOutput(): { write(text: string): void; close(): void } {
  if (process.stderr.isTTY !== true) {
    try {
      const fd = openSync('/dev/tty', 'w');
      const write = (text: string): void => {
        try {
          writeSync(fd, text);
        } catch {
          // A closed terminal (EIO): its SIGHUP ends the prompt, as for stderr's failed writes.
        }
      };
      return { write, close: () => closeSync(fd) };
    } catch {
      // No terminal to write to: stderr, as before.
    }
  }
  return { write: (text) => process.stderr.write(text), close: () => {} };
}

/**
 * A line of the prompt's dialogue (why it asks again), where the prompt shows: with stderr sent
 * to a log, the prompt came back on the terminal with no word of why.
 */
export function sayAtPrompt(line: string): void {
  const shown = promptOutput();
  shown.write(`${line}\n`);
  shown.close();
}

/** Prompts on the terminal (promptOutput) and reads a line from it with echo off. */
export function promptHidden(prompt: string, input: NodeJS.ReadStream = process.stdin): Promise<string> {
  return new Promise((resolve, reject) => {
    const interrupted = (signal: NodeJS.Signals = 'SIGINT') =>
      new CliError('interrupted', { code: 'CANCELLED', showsCode: true, exitCode: exitCodeFor(signal) });
    // A signal sent meanwhile (kill, a closed terminal) ends it as Ctrl-C does, not silently.
    // Heard before the prompt shows: one sent on seeing it, while this process had not run on
    // yet (a loaded machine), met no handler and killed it without a word.
    const stopListening = handleSignals((signal) => finish(interrupted(signal)));
    // Echo goes off before the prompt shows, so nothing typed after seeing it is ever echoed.
    try {
      input.setRawMode(true);
    } catch (error) {
      stopListening(); // not a terminal after all: the signals are the caller's again
      throw error;
    }
    const shown = promptOutput();
    shown.write(prompt);
    input.resume();
    input.setEncoding('utf8');
    let typed = '';
    const finish = (error?: Error) => {
      stopListening();
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      shown.write('\n');
      shown.close();
      if (error) reject(error);
      else resolve(typed);
    };
    // Within a key's escape sequence (arrows: ESC [ D; F1: ESC O P): skipped to its final byte.
    let inEscape: 'none' | 'start' | 'sequence' = 'none';
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (inEscape === 'start') {
          inEscape = char === '[' || char === 'O' ? 'sequence' : 'none';
          if (inEscape === 'sequence') continue;
          // No sequence follows: the Escape key alone (or Alt with a key, sent as ESC and the
          // key). The ESC is dropped; what follows is a key of its own, taken as usual below.
        }
        if (inEscape === 'sequence') {
          if (char >= '@' && char <= '~') inEscape = 'none';
          continue;
        }
        if (char === '\u001b') {
          inEscape = 'start';
          continue;
        }
        if (char === '\r' || char === '\n') return finish();
        // Raw mode turns the terminal's Ctrl-C -> SIGINT off: the caller ends as after a signal (130).
        if (char === '\u0003') return finish(interrupted());
        // Ctrl-D: the end of input, as getpass and sudo take it: no password, the command stops.
        if (char === '\u0004')
          return finish(
            new CliError('no password given (end of input)', { code: 'CANCELLED', showsCode: true }),
          );
        // A whole character, as the terminal's line editing takes one (IUTF8): an emoji is two
        // UTF-16 units, and the half left was sent as U+FFFD.
        if (char === '\u007f' || char === '\b') typed = [...typed].slice(0, -1).join('');
        // Ctrl-U: start the line again, as the terminal's own line editing does.
        else if (char === '\u0015') typed = '';
        // Other control characters are keys, not password text.
        else if (char >= ' ') typed += char;
      }
    };
    input.on('data', onData);
  });
}

/**
 * The first line of stdin (without its line ending). Read no further than `maxLength` characters
 * and its line ending: a longer line is returned cut, still longer than `maxLength`, for the
 * caller to refuse. Without a bound, `user add < /dev/zero` read for ever (480 MB in 30 s), and a
 * large file with no newline was read whole.
 */
export async function readFirstLine(
  input: NodeJS.ReadableStream = process.stdin,
  maxLength = Number.POSITIVE_INFINITY,
): Promise<string> {
  let text = '';
  for await (const chunk of input) {
    // Only the new chunk is looked at for a newline: the text before it had none.
    const piece = String(chunk);
    text += piece;
    if (piece.includes('\n') || text.length > maxLength + 2) break;
  }
  return text.split(/\r?\n/, 1)[0] ?? '';
}
