/**
 * Ctrl-C during transfers. The first SIGINT or SIGTERM aborts them through `controller`, so each
 * download deletes its partial file and the server drops each unfinished upload; the process
 * then exits once they have settled. A second signal exits at once, after removing (synchronously)
 * the temporary files of downloads still in progress: their own cleanup is asynchronous and
 * would not run (issue #7).
 */
import { constants } from 'node:os';
import { removeTemporaryFilesNow } from '../client/sinks.js';

export const INTERRUPTED_EXIT_CODE = 130;

/** Installs the handlers; the returned function removes them. */
export function abortOnInterrupt(controller: AbortController): () => void {
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      removeTemporaryFilesNow();
      process.exit(128 + (constants.signals[signal] ?? 2));
    }
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    // Once interrupted the process is on its way out: a second signal while it closes must still
    // exit at once with 130, not fall to Node's default handler (killed by the signal).
    if (controller.signal.aborted) return;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}
