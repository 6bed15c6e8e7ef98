import { HeldBytesBudget } from './heldBytesBudget.js';

/**
 * Control frames (replies, errors, credit, listings: whatever a queue sends that is not file
 * data) held for peers by all of a server's connections together, from the moment they are queued
 * until the kernel takes them. Each connection bounds its own (it stops reading past twice its
 * outbound mark, and fails with FRAME_FLOOD past 10,000 frames), but 10,000 connections each at
 * that bound could hold ~80 GiB.
 *
 * Room reserved for a reply counts from its reservation, so answers reserved in one turn cannot
 * all slip past. Past this budget, a connection that holds any stops reading new requests and
 * gets no room for further replies until what it holds has left (or the total is back at three
 * quarters of the budget); one that holds none is still read and answered. Those holding the most
 * are among those holding any, and a client that reads its answers holds them only until they are
 * written: it waits for its own answers at most, never for another client's, and none of its
 * frames is dropped. A client that reads nothing is not read again (until the idle timeout closes
 * it). So all together hold at most the budget plus, per connection, the answers to its last
 * socket read (FRAME_FLOOD bounds their number) and one reply's room.
 */
export class ControlFrameBudget extends HeldBytesBudget {
  constructor(limitBytes: number) {
    super(limitBytes, 'control frame budget');
  }

  /** Past the budget: connections holding control frames stop reading. */
  get exceeded(): boolean {
    return this.heldBytes > this.limitBytes;
  }
}
