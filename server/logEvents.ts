/**
 * The server's log as events: each call site says once what happened (a stable event name, its
 * level, the text line, and the fields it has), and each format renders it: `text`, the line as
 * it always read; `json`, one object per line for pipelines (journald → Loki, fail2ban, jq).
 */
import { printable, printableJson } from '../shared/printable.js';
import { droppedLinesText, writeStderrLine } from './stderrLines.js';

/** How bad: `warn` a refusal or failure a client caused, `error` one the operator must look at. */
export type LogLevel = 'info' | 'warn' | 'error';

/**
 * What an event is about, where it has it. Names and paths are the client's own, unquoted and
 * unaltered (a pipeline matches them exactly); the JSON line escapes what could not be shown.
 */
export interface LogFields {
  /** The connection's number (`conn#4` in the text). */
  conn?: number;
  /** The peer's `address:port`. */
  remote?: string;
  /** True on a TLS connection. */
  tls?: boolean;
  /** The logged-in account, or the name a failed login tried. */
  user?: string;
  /** The stream's id on its connection. */
  stream?: number;
  /** The request's operation (`put`, `rename`, …). */
  op?: string;
  path?: string;
  /** A rename's new path. */
  to?: string;
  /** Bytes moved (a transfer: this attempt's; a cut one: so far). */
  bytes?: number;
  /** A continued transfer: the byte it continued from. */
  from?: number;
  /** A transfer's whole size, where known. */
  size?: number;
  /** The error code (docs/PROTOCOL.md). */
  code?: string;
  /** Why, in words (a refusal's message, an error's). */
  reason?: string;
  /** How long (a transfer, a connection's life, an idle timeout), in milliseconds. */
  ms?: number;
  /** How many (streams cut, refusals counted, users loaded, files swept). */
  count?: number;
  bytes_in?: number;
  bytes_out?: number;
  streams?: number;
  attempts_left?: number;
  /** The address the server or the metrics listen on. */
  address?: string;
  mode?: string;
  mtime?: string;
  parents?: boolean;
  signal?: string;
  /** Anonymous access as the users were loaded: `off`, `read` (read-only) or `write` (every permission). */
  anonymous?: 'off' | 'read' | 'write';
  file?: string;
  storage?: string;
}

/** One thing the log says, once, for every format to render. */
export interface LogEvent {
  /** A short stable name (`received`, `login_failed`, …; README's Logs lists them). */
  event: string;
  /** Default `info`. */
  level?: LogLevel;
  /** The text format's line, names shown by printableName(). */
  text: string;
  fields?: LogFields;
}

/** Where the server sends its log events. */
export type LogEventFunction = (event: LogEvent) => void;

/** `muxftp serve --log-format`. */
export type LogFormat = 'text' | 'json';

/**
 * The text line: control and bidi characters as '?' (shared/printable.ts), so that nothing a
 * client chose can break it in two, drive the terminal showing it, or reorder how it reads.
 */
export function textLine(event: LogEvent): string {
  return printable(event.text);
}

/**
 * The JSON line: `time`, `level`, `event`, `msg` (the text line), then the fields, raw. Every
 * character printable() would hide is `\u`-escaped, so the line is as safe to show as the text
 * one while the values parse back exactly as the client sent them.
 */
export function jsonLine(event: LogEvent, time: Date = new Date()): string {
  const line = JSON.stringify({
    time: time.toISOString(),
    level: event.level ?? 'info',
    event: event.event,
    msg: textLine(event),
    ...event.fields,
  });
  // A `tail -f` of the JSON log is read on a terminal too.
  return printableJson(line);
}

/** Events to stderr as JSON lines (the text format's writer is logToStderr, fed textLine()). */
export const logJsonToStderr: LogEventFunction = (event) => {
  writeStderrLine(`${jsonLine(event)}\n`, droppedJsonLine);
};

function droppedJsonLine(count: number): string {
  return `${jsonLine({ event: 'log_dropped', level: 'warn', text: droppedLinesText(count), fields: { count } })}\n`;
}
