/**
 * How `muxftp serve` writes its log in each --log-format: the server's events, its own (start,
 * stop, SIGHUP, the served root's lock), and its start-up warnings. `text` is byte for byte what
 * serve wrote before there was a choice; `json` puts every one of them on stderr as a JSON line.
 */
import { type LogEvent, type LogFormat, logJsonToStderr } from '../server/logEvents.js';
import { logToStderr, type ServerOptions } from '../server/options.js';

export interface ServeLog {
  /** The MuxServer's log option for this format. */
  readonly serverOptions: Pick<ServerOptions, 'log' | 'logEvent'>;
  /** One of serve's own events. */
  log(event: LogEvent): void;
  /** A start-up warning: in text a `muxftp: warning: …` line without a timestamp, as always. */
  warning(warning: string): void;
  /** Listening: in text only the stdout line says so, so the log reads as it always did. */
  listening(event: LogEvent): void;
}

export function serveLog(format: LogFormat): ServeLog {
  if (format === 'json') {
    return {
      serverOptions: { logEvent: logJsonToStderr },
      log: logJsonToStderr,
      warning: (warning) => logJsonToStderr({ event: 'warning', level: 'warn', text: `warning: ${warning}` }),
      listening: logJsonToStderr,
    };
  }
  return {
    serverOptions: { log: logToStderr },
    // serve's own lines were never passed through printable(): the operator wrote what they hold.
    log: (event) => logToStderr(event.text),
    warning: (warning) => process.stderr.write(`muxftp: warning: ${warning}\n`),
    listening: () => {},
  };
}
