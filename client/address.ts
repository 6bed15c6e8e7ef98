import { DEFAULTS } from '../shared/defaults.js';

/** A server's host and TCP port. */
export interface ServerAddress {
  host: string;
  port: number;
}

/** Parses `host:port`, `host`, `:port` or `[v6]:port`; missing parts take the defaults. */
export function parseServerAddress(text: string | undefined): ServerAddress {
  if (text === undefined || text === '') return { host: DEFAULTS.host, port: DEFAULTS.port };
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*))(?::(\d+))?$/.exec(text.trim());
  if (match === null) throw new TypeError(`invalid server address "${text}": expected host:port`);
  const host = match[1] ?? match[2] ?? '';
  const port = match[3] === undefined ? DEFAULTS.port : Number(match[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TypeError(`invalid port in server address "${text}": expected 1-65535`);
  }
  return { host: host === '' ? DEFAULTS.host : host, port };
}
