/**
 * The server's log lines about refused connections. One line each let a flood of refusals (a host
 * past --max-connections-per-ip opening sockets in a loop) write the log as fast as it could
 * connect; now the first refusal of a kind is logged as it comes, and those after it are counted:
 * one line per interval says how many, for as long as they go on. A connection's refused requests
 * (PERMISSION_DENIED, say) are kinds of their own, one per code, so one user's flood hides no other's.
 */

import { timerDelay } from '../shared/timerDelay.js';
import type { LogEvent, LogEventFunction, LogFields } from './logEvents.js';

/** What a kind's summary line counts, and the words it starts with. */
export interface RefusalSubject {
  /** Before "refused …": a connection's label for its requests; '' for connections. */
  prefix: string;
  noun: 'connection' | 'request';
  /** The connection's log fields, for its requests' summaries. */
  fields?: LogFields;
}

const CONNECTIONS: RefusalSubject = { prefix: '', noun: 'connection' };

interface KindState {
  /** Refusals of the kind since the last line about it. */
  unlogged: number;
  subject: RefusalSubject;
  /** The latest refusal's reason, for the summary line. */
  reason: string;
  /** performance.now() when the current interval began. */
  since: number;
  timer: NodeJS.Timeout;
}

export class RefusalLog {
  private readonly kinds = new Map<string, KindState>();

  /** `intervalMs` 0 logs every refusal. */
  constructor(
    private readonly log: LogEventFunction,
    private readonly intervalMs: number,
  ) {}

  /**
   * One refusal of `kind` (a limit's name): `event` is logged when no refusal of that kind was
   * within the interval, else the refusal is counted for the interval's summary with `reason`.
   */
  refused(kind: string, event: LogEvent, reason: string, subject: RefusalSubject = CONNECTIONS): void {
    const state = this.kinds.get(kind);
    if (state !== undefined) {
      state.unlogged++;
      state.reason = reason;
      return;
    }
    this.log(event);
    if (this.intervalMs === 0) return;
    this.kinds.set(kind, {
      unlogged: 0,
      subject,
      reason,
      since: performance.now(),
      timer: this.timerFor(kind),
    });
  }

  /** Logs what `kind` counted and not yet told, and ends its interval (its connection closed). */
  flushKind(kind: string): void {
    const state = this.kinds.get(kind);
    if (state === undefined) return;
    clearTimeout(state.timer);
    if (state.unlogged > 0) this.log(summary(state));
    this.kinds.delete(kind);
  }

  /** Logs the refusals counted and not yet told, and stops the timers (the server is closing). */
  flush(): void {
    for (const state of this.kinds.values()) {
      clearTimeout(state.timer);
      if (state.unlogged > 0) this.log(summary(state));
    }
    this.kinds.clear();
  }

  private timerFor(kind: string): NodeJS.Timeout {
    return setTimeout(() => this.intervalOnEnd(kind), timerDelay(this.intervalMs)).unref();
  }

  /** A quiet interval ends the kind's throttling: its next refusal gets a line of its own again. */
  private intervalOnEnd(kind: string): void {
    const state = this.kinds.get(kind);
    if (state === undefined) return;
    if (state.unlogged === 0) {
      this.kinds.delete(kind);
      return;
    }
    this.log(summary(state));
    state.unlogged = 0;
    state.since = performance.now();
    state.timer = this.timerFor(kind);
  }
}

function summary({ unlogged, subject, reason, since }: KindState): LogEvent {
  const seconds = Math.max(1, Math.round((performance.now() - since) / 1000));
  return {
    event: subject.noun === 'connection' ? 'connections_refused_more' : 'requests_refused_more',
    level: 'warn',
    text: `${subject.prefix}refused ${unlogged} more ${subject.noun}${unlogged === 1 ? '' : 's'} (${reason}) in the last ${seconds} s`,
    fields: { ...subject.fields, count: unlogged, reason, ms: seconds * 1000 },
  };
}
