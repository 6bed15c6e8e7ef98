/**
 * Ctrl-C in a client command. Around its transfers (abortOnInterrupt) the first SIGINT, SIGTERM or
 * SIGHUP (the terminal closed, an ssh session dropped)
 * aborts them through `controller`, so each download keeps its whole blocks for `get -c` (hidden,
 * beside its target) and the server keeps or drops each unfinished upload; the process then exits
 * once they have settled. A second signal exits at once, after settling (synchronously) the
 * temporary files of downloads still in progress the same way: their own clean-up is
 * asynchronous and would not run (issue #7). Before and after the
 * transfers (connecting, planning, ls, mkdir...) nothing local is half-done, so exitOnInterrupt
 * says so in one line and exits at once.
 */
import { constants } from 'node:os';
import { settleTemporaryFilesNow } from '../client/sinks.js';
import { DEFAULTS } from '../shared/defaults.js';
import { printable } from '../shared/printable.js';
import { SHOW_CURSOR, WRAP_LINES } from '../shared/terminalStop.js';
import { localCallsWaitingPast } from './localCallsWaiting.js';
import { canRedraw } from './terminalDrawing.js';

type SignalHandler = (signal: NodeJS.Signals) => void;

/**
 * Handlers nest (the command's around its transfers'): only the innermost acts, so a signal
 * during transfers is theirs alone, and the command's takes over again when they are done.
 */
const handlers: SignalHandler[] = [];

/** Handled as Ctrl-C: a hang-up too, else it killed the process and a download kept nothing for get -c. */
const INTERRUPTS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function processOnSignal(signal: NodeJS.Signals): void {
  if (signal === 'SIGHUP') {
    // The terminal is gone: a line written to it fails (EIO), which must not end the process
    // before its downloads have kept what they received.
    for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
    endByHangupAtExit();
  }
  handlers[handlers.length - 1]?.(signal);
}

let hangupAtExit = false;

/**
 * After a hang-up the process ends by the SIGHUP itself once it has settled (as a program that
 * does not handle it: 129 in a shell), not by exiting: a normal exit sets the terminal's modes
 * back, which fails on a closed terminal, and Node 20 aborts on that failure (nodejs/node#51519,
 * fixed in later Nodes): status 134 and perhaps a core file.
 */
function endByHangupAtExit(): void {
  if (hangupAtExit) return;
  hangupAtExit = true;
  endBySignalAtExit('SIGHUP');
}

/**
 * Makes the process, when it exits, end by `signal` itself instead (its default action), after
 * the 'exit' listeners added before this call have run: as a program that does not handle the
 * signal ends, which a shell reports as 128 + its number and a service manager as a clean stop.
 */
export function endBySignalAtExit(signal: NodeJS.Signals): void {
  process.once('exit', () => {
    // With no listener left, libuv gives the signal back its default action: ending the process.
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
    // The signal may be taken by another of the process's threads: wait here for it to land
    // rather than go on into the exit (bounded: should it not, the exit goes on).
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2_000);
  });
}

let terminalErrorsIgnored = false;

/** Makes `handler` the one that acts on INTERRUPTS until the returned function is called. */
export function handleSignals(handler: SignalHandler): () => void {
  handlers.push(handler);
  if (handlers.length === 1) for (const signal of INTERRUPTS) process.on(signal, processOnSignal);
  // A closed terminal fails the bars' next write (EIO), which may come before its SIGHUP: that
  // must not end the process with an unhandled 'error' while its downloads keep what they got.
  if (!terminalErrorsIgnored && process.stderr.isTTY === true) {
    terminalErrorsIgnored = true;
    process.stderr.on('error', () => {});
  }
  return () => {
    const index = handlers.lastIndexOf(handler);
    if (index !== -1) handlers.splice(index, 1);
    if (handlers.length === 0) for (const signal of INTERRUPTS) process.off(signal, processOnSignal);
  };
}

/**
 * Exits at once with 128 + the signal's number. Progress bars hide the cursor (and bench's turns
 * the terminal's line wrapping off) until they stop, which an exit from under them never lets
 * them do: the shell would be left without a cursor.
 */
function exitNow(signal: NodeJS.Signals): never {
  // Not on TERM=dumb, where nothing hid them and the sequences would show as text.
  if (canRedraw(process.stderr)) process.stderr.write(`${SHOW_CURSOR}${WRAP_LINES}`);
  endPastHungCalls(signal);
  process.exit(exitCodeFor(signal));
}

/**
 * A local filesystem call that has not returned (a hung NFS or FUSE mount) holds a threadpool
 * thread, which process.exit waits for (libuv joins its threads at exit): Ctrl-C then ended
 * nothing but the line it printed. With such a call on a path the command was given, waiting past
 * DEFAULTS.localCallHungMs, says what it was waiting on and makes the exit end by the signal
 * itself (the kernel waits for no thread): 130 in a shell all the same. A younger call (a stat of
 * put -r's walk under way) is waited for, as before: it returns.
 */
function endPastHungCalls(signal: NodeJS.Signals): void {
  const hung = localCallsWaitingPast(DEFAULTS.localCallHungMs);
  if (hung.length === 0) return;
  const more = hung.length > 1 ? ` (and ${hung.length - 1} more call${hung.length === 2 ? '' : 's'})` : '';
  process.stderr.write(
    `muxftp: ${printable(hung[0]!)}${more} had not returned (a hung mount?): ended without waiting for it\n`,
  );
  endBySignalAtExit(signal);
}

/** 128 + the signal's number, as a shell reports a process the signal ended (130 for SIGINT). */
export function exitCodeFor(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 2);
}

/**
 * Installs the transfers' handler; the returned function removes it. `quiet` (-q, --json): a
 * second signal exits without its line. `interrupted` hears the first signal, whose exit code
 * (exitCodeFor) the command ends with once its transfers have settled.
 */
export function abortOnInterrupt(
  controller: AbortController,
  quiet = false,
  interrupted?: (signal: NodeJS.Signals) => void,
): () => void {
  const remove = handleSignals((signal) => {
    if (controller.signal.aborted) {
      settleTemporaryFilesNow();
      if (process.stderr.isTTY === true && !quiet)
        process.stderr.write(
          '\nmuxftp: interrupted again: stopping now, without waiting for the rest to finish\n',
        );
      exitNow(signal);
    }
    interrupted?.(signal);
    controller.abort();
  });
  return () => {
    // Once interrupted the process is on its way out: a second signal while it closes must still
    // exit at once with 130, not fall to the command's handler or Node's default.
    if (!controller.signal.aborted) remove();
  };
}

/**
 * Installs a handler that calls `report` (which prints the one line saying what was interrupted)
 * and exits with 128 + the signal's number (130 for SIGINT); the returned function removes it.
 * Without it a command waiting on a server that never answers died of the signal, silently.
 */
export function exitOnInterrupt(report: () => void): () => void {
  return handleSignals((signal) => {
    report();
    exitNow(signal);
  });
}
