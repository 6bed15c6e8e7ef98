/**
 * Commander argument parsers. They throw InvalidArgumentError, which commander reports as a
 * usage error (exit code 2) naming the option, before any command runs.
 */
import { InvalidArgumentError } from 'commander';
import { parseServerAddress, type ServerAddress } from '../client/address.js';
import { normalizeClientPath } from '../shared/clientPaths.js';
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

/**
 * A home directory under the served root (`--home`, `--anonymous-home`): `/` or `shared`. Empty is
 * refused, as empty path arguments are: most often an unset variable, never meant as the root.
 */
export function parseHomeDirectory(value: string): string {
  if (value.trim() === '')
    throw new InvalidArgumentError('empty (an unset variable?); give / for the whole served root.');
  // `./$X`, `$X//` with X unset gave the whole served root without a word: only / asks for it.
  let home: string;
  try {
    // Given from the served root, as / reads (the commands strip the leading /).
    home = normalizeClientPath(value.replace(/^\/+/, ''));
  } catch (error) {
    throw new InvalidArgumentError(`${(error as Error).message}.`);
  }
  if (home === '' && value !== '/')
    throw new InvalidArgumentError('names the whole served root (an unset variable?); give / for that.');
  return value;
}

/**
 * `serve --host`: an empty one is refused, as an empty --server is. Node binds '' to every
 * address: `--host "$BIND"` with BIND unset served the whole network where loopback was meant.
 */
export function parseListenHost(value: string): string {
  if (value.trim() === '')
    throw new InvalidArgumentError(
      `empty (an unset variable?); give 0.0.0.0 or :: to listen on every address, or leave --host out for ${DEFAULTS.host}.`,
    );
  return value;
}

/** `serve --root`: an empty one is refused here, as a usage error, not by the storage at start. */
export function parseRootDirectory(value: string): string {
  if (value === '')
    throw new InvalidArgumentError(
      `empty (an unset variable?); give . for the working directory, or leave --root out for ${DEFAULTS.root}.`,
    );
  return value;
}

/** `--user`: an empty one is refused, as an empty --server is (`--user "$USER_NAME"` with it unset). */
export function parseUserName(value: string): string {
  if (value === '') throw new InvalidArgumentError('empty (an unset variable?).');
  return value;
}

/** A per-user quota: a size of at least 1 byte (0 would not mean "none": leave it out for that). */
export function parseQuota(value: string): number {
  const bytes = commanderParser(parseSize)(value);
  if (bytes === 0) throw new InvalidArgumentError('must be at least 1 byte; leave --quota out for no quota.');
  return bytes;
}

/**
 * A user's rate in the users file (`user add --max-rate`): at least 1 byte/s. 0 is "none" for
 * serve's own rates, but a user without one gets serve's --max-user-rate: it exempts nobody.
 */
export function parseUserRate(value: string): number {
  const rate = parseRate(value);
  if (rate === 0)
    throw new InvalidArgumentError(
      "must be at least 1 byte/s; leave --max-rate out for the server's --max-user-rate (0 would not exempt the user from it).",
    );
  return rate;
}

/** A umask in octal: `022`, `0077`, `7`. */
export function parseUmask(value: string): number {
  if (!/^0?[0-7]{1,3}$/.test(value))
    throw new InvalidArgumentError('expected octal bits, such as 022 or 077.');
  return Number.parseInt(value, 8);
}

export function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n > 65535) {
    throw new InvalidArgumentError('expected a port number from 0 to 65535.');
  }
  return n;
}

/** Seconds in decimal, fractions and an exponent allowed (`1.5`, `1e3`), as whole milliseconds (at least 1). */
export function parseSecondsAsMs(value: string): number {
  const seconds = Number(value);
  // Number() alone took `0x10` for 16 s, `0b11` and `0o17` too.
  if (
    !/^\s*(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?\s*$/i.test(value) ||
    !Number.isFinite(seconds) ||
    seconds <= 0
  ) {
    throw new InvalidArgumentError('expected a positive number of seconds.');
  }
  const ms = Math.max(1, Math.round(seconds * 1000));
  // Else `serve --idle-timeout 1e13` got past here and stopped the server's start with a stack
  // trace (MuxServer takes whole milliseconds); a timer holds to MAX_TIMER_MS anyway.
  if (!Number.isSafeInteger(ms)) throw new InvalidArgumentError('duration too long.');
  return ms;
}

/**
 * `--server` and $MUXFTP_SERVER: what {@link parseServerAddress} takes (a bare IPv6 address too, at
 * the default port), its refusals as commander's usage errors. An empty one is refused, as an
 * empty path is: `--server "$HOST"` with HOST unset must not reach whatever listens on 127.0.0.1.
 */
export function parseServerOption(value: string): ServerAddress {
  if (value.trim() === '')
    throw new InvalidArgumentError(
      `an empty address (an unset variable?); without --server or $MUXFTP_SERVER the default is ${DEFAULTS.host}:${DEFAULTS.port}.`,
    );
  try {
    return parseServerAddress(value);
  } catch (error) {
    throw new InvalidArgumentError(`${(error as Error).message}.`);
  }
}

/**
 * A commander parser from a plain one that throws (a TypeError with the reason). One of the
 * parsers above, already an InvalidArgumentError ending in its period, passes through as it is.
 */
export function commanderParser<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (error) {
      if (error instanceof InvalidArgumentError) throw error;
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
  if (match === null) throw new InvalidArgumentError('expected a duration such as 90s, 30m, 24h, 7d or 0.');
  const ms = Math.round(Number(match[1]) * DURATION_UNITS_MS[match[2] || 's']!);
  if (!Number.isSafeInteger(ms)) throw new InvalidArgumentError('duration too long.');
  return ms;
}
