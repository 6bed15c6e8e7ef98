import { isIPv6 } from 'node:net';
import { DEFAULTS } from '../shared/defaults.js';

/** A server's host and TCP port. */
export interface ServerAddress {
  /** Host name or IP address, an IPv6 one without brackets. parseServerAddress's default: 127.0.0.1. */
  host: string;
  /** TCP port, 1 to 65535. parseServerAddress's default: 7421. */
  port: number;
}

/**
 * Parses `host:port`, `host`, `:port`, `[v6]:port`, `[v6]`, or a bare IPv6 address (`::1`,
 * `fe80::1%eth0`), as ssh takes one, at the default port; missing parts take the defaults. A bare
 * IPv6 address followed by a port (`::1:7421`) is refused with its bracketed form, as curl and
 * scp need brackets there: it may itself read as an address, so guessing could connect somewhere
 * else than meant. Throws a TypeError saying what is wrong.
 */
export function parseServerAddress(text: string | undefined): ServerAddress {
  if (text === undefined || text.trim() === '') return { host: DEFAULTS.host, port: DEFAULTS.port };
  const trimmed = text.trim();
  const colons = trimmed.split(':').length - 1;
  if (colons >= 2 && !trimmed.startsWith('[')) return bareIpv6Address(trimmed);
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*))(?::(\d+))?$/.exec(trimmed);
  if (match === null) throw new TypeError(`invalid server address "${text}": expected host:port`);
  const host = match[1] ?? match[2] ?? '';
  const port = match[3] === undefined ? DEFAULTS.port : Number(match[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TypeError(`invalid port in server address "${text}": expected 1-65535`);
  }
  return { host: host === '' ? DEFAULTS.host : host, port };
}

/** An address of two or more colons, unbracketed: an IPv6 address alone, or refused. */
function bareIpv6Address(text: string): ServerAddress {
  const split = text.lastIndexOf(':');
  const [head, tail] = [text.slice(0, split), text.slice(split + 1)];
  const port = Number(tail);
  const withPort = isIPv6(head) && /^\d+$/.test(tail) && port >= 1 && port <= 65535;
  if (isIPv6(text) && !withPort) return { host: text, port: DEFAULTS.port };
  if (isIPv6(text)) {
    throw new TypeError(
      `"${text}" reads as [${text}]:${DEFAULTS.port} or [${head}]:${port}: put an IPv6 address in brackets`,
    );
  }
  if (withPort) throw new TypeError(`an IPv6 address with a port goes in brackets: [${head}]:${port}`);
  throw new TypeError(`invalid server address "${text}": expected host:port, or [IPv6 address]:port`);
}
