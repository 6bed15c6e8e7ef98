/**
 * A time in ms since the epoch as node's utimes family takes it. Seconds as a number keep the
 * fraction of a millisecond a Date drops (a Date holds whole milliseconds: a time cut down to one
 * reads back a nanosecond short of it, a millisecond early once rounded); a Date for a time before
 * 1970, since node takes a negative number for "now".
 */
export function fileTime(ms: number): number | Date {
  if (ms < 0) return new Date(ms);
  // libuv cuts the seconds to whole microseconds, and .020 s arrives as .0199999…: the nearest
  // microsecond plus half of one is cut to that microsecond.
  return (Math.round(ms * 1000) + 0.5) / 1e6;
}
