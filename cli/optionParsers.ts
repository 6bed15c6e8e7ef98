/**
 * Commander argument parsers. They throw InvalidArgumentError, which commander reports as a
 * usage error (exit code 2) naming the option, before any command runs.
 */
import { isIPv6 } from 'node:net';
import { InvalidArgumentError } from 'commander';
import { parseServerAddress, type ServerAddress } from '../client/address.js';
import { DEFAULTS } from '../shared/defaults.js';
import { parseSize } from '../shared/humanUnits.js';
import {
  INTEGRITY_ALGORITHMS,
  type IntegrityAlgorithm,
  isIntegrityAlgorithm,
} from '../shared/integrity/algorithms.js';

export function parsePositiveInteger(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('expected a positive integer.');
  }
  return n;
}

export function parseNonNegativeInteger(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError('expected a non-negative integer.');
  }
  return n;
}

/** Bytes per second: `10MiB`, `500KB/s`, `0` for no limit. */
export function parseRate(value: string): number {
  try {
    return parseSize(value.replace(/\/s$/i, ''));
  } catch (error) {
    throw new InvalidArgumentError(`${(error as Error).message} (bytes per second, e.g. 10MiB).`);
  }
}

export function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n > 65535) {
    throw new InvalidArgumentError('expected a port number from 0 to 65535.');
  }
  return n;
}

/** Seconds, fractions allowed, as whole milliseconds (at least 1). */
export function parseSecondsAsMs(value: string): number {
  const seconds = Number(value);
  if (value.trim() === '' || !Number.isFinite(seconds) || seconds <= 0) {
    throw new InvalidArgumentError('expected a positive number of seconds.');
  }
  return Math.max(1, Math.round(seconds * 1000));
}

/**
 * `--server` and $MUXFTP_SERVER: `host:port`, `host`, `:port`, `[v6]:port`, `[v6]`, and a bare IPv6
 * address, as ssh takes one, at the default port. A bare address with a port (`::1:7421`) is
 * refused with its bracketed form, as curl and scp need brackets there: it may itself read as an
 * address (`::1:7421` is one), so guessing could connect somewhere else than meant.
 */
export function parseServerOption(value: string): ServerAddress {
  const text = value.trim();
  const colons = text.split(':').length - 1;
  if (colons >= 2 && !text.startsWith('[')) return bareIpv6Address(text);
  try {
    return parseServerAddress(text);
  } catch (error) {
    throw new InvalidArgumentError(`${(error as Error).message}.`);
  }
}

function bareIpv6Address(text: string): ServerAddress {
  const split = text.lastIndexOf(':');
  const [head, tail] = [text.slice(0, split), text.slice(split + 1)];
  const port = Number(tail);
  const withPort = isIPv6(head) && /^\d+$/.test(tail) && port >= 1 && port <= 65535;
  if (isIPv6(text) && !withPort) return { host: text, port: DEFAULTS.port };
  if (isIPv6(text)) {
    throw new InvalidArgumentError(
      `"${text}" reads as [${text}]:${DEFAULTS.port} or [${head}]:${port}: put an IPv6 address in brackets.`,
    );
  }
  if (withPort)
    throw new InvalidArgumentError(`an IPv6 address with a port goes in brackets: [${head}]:${port}.`);
  throw new InvalidArgumentError(
    `invalid server address "${text}": expected host:port, or [IPv6 address]:port.`,
  );
}

/** A commander parser from a plain one that throws (a TypeError with the reason). */
export function commanderParser<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (error) {
      throw new InvalidArgumentError(`${(error as Error).message}.`);
    }
  };
}

/** An integrity algorithm name (`--checksum`, `stat --hash`). */
export function parseIntegrityAlgorithm(value: string): IntegrityAlgorithm {
  if (!isIntegrityAlgorithm(value)) {
    throw new InvalidArgumentError(`expected one of ${INTEGRITY_ALGORITHMS.join(', ')}.`);
  }
  return value;
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** A duration such as `90`, `90s`, `30m`, `24h`, `7d` (no unit: seconds), 0 allowed, as whole milliseconds. */
export function parseDurationAsMs(value: string): number {
  const match = /^(\d+(?:\.\d+)?)([smhd]?)$/.exec(value.trim());
  if (match === null) throw new InvalidArgumentError('expected a duration such as 90s, 30m, 24h or 0.');
  const ms = Math.round(Number(match[1]) * DURATION_UNITS_MS[match[2] || 's']!);
  if (!Number.isSafeInteger(ms)) throw new InvalidArgumentError('duration too long.');
  return ms;
}
