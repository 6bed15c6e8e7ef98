/**
 * The server's files open for transfers (`--max-open-files`), shared fairly between connections.
 *
 * Past the cap a request is refused SERVER_BUSY and the client retries later. Without shares, a
 * client that keeps many slow transfers going takes back each slot the moment one of its files
 * closes, on the same loop turn, while a refused client waits out its retry's backoff: it could
 * starve for as long as the other kept going. So once a connection holding less than its share
 * has been refused at the cap, the server is contended for `contentionMs`: meanwhile a connection
 * holding its share or more (the cap over the connections holding files and those refused holding
 * none, each counted once) is refused new files even below the cap, and the slots its finished
 * transfers give back go to the others. A refused connection waits no more once it takes a slot
 * (or closes): still counted, it would shrink every share and leave slots free that nobody may
 * take. Uncontended, any connection may take every free slot (nothing is held back unused).
 * A refusal names its limit (`openFiles`, `openFileShare`) and says when to try again
 * (`retryAfterMs`), so a client retries while the contention lasts instead of giving up.
 *
 * Shares alone never take a slot back: a connection that opened files and then let their
 * transfers sit (a client reading none of them) held them for as long as it stayed connected.
 * So each refusal at the cap of a connection holding less than its share asks a connection
 * holding more (the one holding most first) to give one back (`reclaim`): the server's connection
 * fails its transfer idle longest, if idle long enough (DEFAULTS.openFileReclaimIdleMs).
 */
import { ServerBusyError } from '../shared/errors.js';
import { outOfDescriptorsRefusal } from './fileDescriptors.js';

export class OpenFileSlots {
  /** The cap; a default one is set again once the server has counted its descriptors (listen). */
  max: number;
  readonly #contentionMs: number;
  readonly #retryAfterMs: number;
  #open = 0;
  /** Slots each connection holds, for those holding any. */
  readonly #held = new Map<object, number>();
  /** performance.now() until which the slots are contended. */
  #contendedUntil = -Infinity;
  /** Connections refused at the cap holding none, until when each counts as waiting for a slot. */
  readonly #waiting = new Map<object, number>();

  /** Asks holder `who` to give back one slot; true when it closed a transfer to do so. */
  readonly #reclaim: ((who: object) => boolean) | undefined;
  /** How many files the server's descriptors have room for now (fewer than `max` when given above them). */
  readonly #descriptorRoom: (() => number) | undefined;

  constructor(
    max: number,
    contentionMs: number,
    retryAfterMs: number,
    reclaim?: (who: object) => boolean,
    descriptorRoom?: () => number,
  ) {
    this.max = max;
    this.#contentionMs = contentionMs;
    this.#retryAfterMs = retryAfterMs;
    this.#reclaim = reclaim;
    this.#descriptorRoom = descriptorRoom;
  }

  /** Slots held now, every connection together. */
  get open(): number {
    return this.#open;
  }

  /** A slot for connection `who`; undefined when taken, else the refusal to send (none taken). */
  take(who: object): ServerBusyError | undefined {
    const now = performance.now();
    const held = this.#held.get(who) ?? 0;
    // The connections a share is of: those holding files, those refused holding none (not among
    // the holders), and the asking one when it holds none.
    const contended = now < this.#contendedUntil;
    let waiting = 0;
    for (const [waiter, until] of this.#waiting) {
      if (until <= now) this.#waiting.delete(waiter);
      else if (waiter !== who) waiting++;
    }
    // The descriptors may run out below the cap (one given above what they allow): then what they
    // allow is the cap, shares included. Shares of the larger cap were never reached: a client
    // holding every file the descriptors allowed, reading none, was not asked to give one back.
    const room = this.#descriptorRoom?.() ?? Number.POSITIVE_INFINITY;
    const cap = Math.max(1, Math.min(this.max, room));
    const share = Math.ceil(cap / (this.#held.size + waiting + (held === 0 ? 1 : 0)));
    const atCap = this.#open >= this.max;
    if (atCap || this.#open >= room) {
      if (held < share) {
        this.#contendedUntil = now + this.#contentionMs;
        if (held === 0) this.#waiting.set(who, this.#contendedUntil);
        this.#reclaimOne(share);
      }
      if (!atCap) return outOfDescriptorsRefusal(this.#retryAfterMs);
      return new ServerBusyError(
        'openFiles',
        `server busy: ${this.max} files are open for transfers; try again later`,
        this.#retryAfterMs,
      );
    }
    if (held >= share && contended) {
      return new ServerBusyError(
        'openFileShare',
        `server busy: this connection holds ${held} of the ${cap} files open for transfers while others wait for one; try again later`,
        this.#retryAfterMs,
      );
    }
    this.hold(who);
    this.#waiting.delete(who); // a holder now, counted as one
    return undefined;
  }

  /** One slot back from a holder past `share`, the one holding most first (at most one per call). */
  #reclaimOne(share: number): void {
    if (this.#reclaim === undefined) return;
    const over = [...this.#held].filter(([, count]) => count > share).sort((a, b) => b[1] - a[1]);
    for (const [holder] of over) if (this.#reclaim(holder)) return;
  }

  /** Connection `who` closed: it waits for no slot. */
  forget(who: object): void {
    this.#waiting.delete(who);
  }

  /** A slot that is not refused: a transfer's file kept open a while after its stream (views). */
  hold(who: object): void {
    this.#open++;
    this.#held.set(who, (this.#held.get(who) ?? 0) + 1);
  }

  /** Connection `who` gives a slot back. */
  release(who: object): void {
    this.#open--;
    const held = (this.#held.get(who) ?? 1) - 1;
    if (held === 0) this.#held.delete(who);
    else this.#held.set(who, held);
  }
}
