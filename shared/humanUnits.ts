/** Byte counts, rates and durations the way people read and write them (binary units, three digits). */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** Past this a unit's whole number rounds to 1024 of it: the next unit says it (`1.00 MiB`). */
const NEXT_UNIT_AT = 1023.5;

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < NEXT_UNIT_AT) return `${Math.max(0, Math.round(bytes || 0))} B`;
  let value = bytes;
  let unit = 0;
  while (value >= NEXT_UNIT_AT && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  // Three digits, counted after rounding: 9.996 is `10.0`, not `10.00`.
  const digits = value < 9.995 ? 2 : value < 99.95 ? 1 : 0;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

/**
 * Two byte counts for one sentence, in bytes when they differ but would read alike: a refusal of
 * 4 MiB into 4 MiB less 4 KiB read "4.00 MiB declared, 4.00 MiB free", which says it should fit.
 */
export function formatBytesApart(first: number, second: number): [string, string] {
  const shown: [string, string] = [formatBytes(first), formatBytes(second)];
  return first !== second && shown[0] === shown[1] ? [`${first} B`, `${second} B`] : shown;
}

export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

export function formatDuration(ms: number): string {
  // Each unit up to where its rounding would show the next one's (1000 ms, 60.0 s, 1 min 60 s).
  if (ms < 999.5) return `${Math.round(ms)} ms`;
  const seconds = ms / 1_000;
  if (seconds < 59.95) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)} min ${whole % 60} s`;
}

/** Time left, in whole seconds rounded up: `7 s`, `2 min 05 s`. */
export function formatEta(ms: number): string {
  const seconds = Math.ceil(ms / 1_000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${String(seconds % 60).padStart(2, '0')} s`;
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

/** `64KiB`, `10MiB`, `1.5GiB`, `1000` (bytes); KB/MB/GB are decimal. */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = SIZE_UNITS[(match?.[2] ?? '').toLowerCase() || 'b'];
  if (match === null || unit === undefined)
    throw new TypeError(`invalid size "${text}": use e.g. 64KiB, 10MiB`);
  const bytes = Math.round(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new TypeError(`invalid size "${text}"`);
  // Else `--max-rate 0.4` or `--quota 0.4` became 0, which those options read as "no limit".
  if (bytes === 0 && Number(match[1]) > 0) throw new TypeError(`invalid size "${text}": less than one byte`);
  return bytes;
}

/**
 * A number of at least 0 written in decimal (`5`, `1.5`, `.5`, `1e3`; blanks around it allowed,
 * as the CLI's integers take them): not the rest of what Number() takes (`0x10` as 16, `0b11`,
 * `0o17`, `Infinity`, '' as 0), nor one past a double's range (`1e400`).
 */
export function parseDecimal(text: string): number {
  const n = Number(text);
  if (!/^\s*(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?\s*$/i.test(text) || !Number.isFinite(n))
    throw new TypeError(`invalid number "${text}": expected a decimal number, e.g. 5 or 1.5`);
  return n;
}

/** `30s`, `500ms`, `2m`, `1.5` (seconds). */
export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(text);
  if (match === null) throw new TypeError(`invalid duration "${text}": use e.g. 30s, 500ms, 2m`);
  const factor = match[2] === 'ms' ? 1 : match[2] === 'm' ? 60_000 : 1_000;
  return Math.round(Number(match[1]) * factor);
}
