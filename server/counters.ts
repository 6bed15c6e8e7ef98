/** Server-wide running totals, read by the `stats` operation and the logs. */
export class ServerCounters {
  readonly startedAt = Date.now();
  connections = 0;
  streams = 0;
  bytesIn = 0;
  bytesOut = 0;
  filesIn = 0;
  filesOut = 0;
}
