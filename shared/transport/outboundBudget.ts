import { HEADER_BYTES } from '../protocol/constants.js';
import { HeldBytesBudget } from './heldBytesBudget.js';

/**
 * File data held for peers by all of a process's outbound queues together: the server's bound on
 * what slow readers can make it hold. Each queue already stops its producers at its own high-water
 * mark; past this budget, a queue that holds anything stops them too, and a queue holding nothing
 * may still take one small chunk (at most `trickleBytes`), which keeps every connection moving
 * however many there are. So the total stays within `limitBytes + connections × trickleBytes`
 * (256 MiB + 10,000 × 64 KiB by default). A full 1 MiB chunk each made that 10 GiB at 10,000
 * connections that open a download and never read.
 */
export class OutboundBudget extends HeldBytesBudget {
  /** Past the limit, the largest chunk (frame bytes, header included) a queue holding nothing may take. */
  readonly trickleBytes: number;

  constructor(limitBytes: number, trickleBytes: number) {
    super(limitBytes, 'outbound budget');
    if (!Number.isSafeInteger(trickleBytes) || trickleBytes <= HEADER_BYTES)
      throw new RangeError(
        `outbound trickle must be an integer of bytes above a frame header (${HEADER_BYTES}), got ${trickleBytes}`,
      );
    this.trickleBytes = trickleBytes;
  }

  hasRoomFor(bytes: number): boolean {
    return this.heldBytes + bytes <= this.limitBytes;
  }
}
