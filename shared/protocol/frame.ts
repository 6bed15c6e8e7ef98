/**
 * A decoded frame. `payload` may share memory with the input it was decoded from.
 *
 * DATA is delivered as it arrives rather than whole: a DATA frame whose payload spans several
 * socket reads comes as several frames with the same header, each with the next piece of the
 * payload and `partial` set on all but the last, so no payload is ever copied to be reassembled.
 * The first piece carries the whole frame's length (`frameLength`), since flow control counts
 * whole frames. Every other type comes whole, without these fields.
 */
export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
  /** DATA only: more of this frame's payload follows in the next frame delivered. */
  partial?: boolean;
  /** DATA only: the payload length the header announced, on the first piece; 0 on later pieces. */
  frameLength?: number;
  /**
   * DATA only: `payload` is a view of a read buffer that is reused once the frame handler
   * returns; whoever keeps the bytes copies them (ReceivedBytes).
   */
  borrowed?: boolean;
}

/**
 * The flow-control credit a DATA frame (or piece) takes: the whole frame's length, counted when
 * its first piece arrives, so a frame sent beyond the credit is caught from its header.
 */
export function creditTaken(frame: Frame): number {
  return frame.frameLength ?? frame.payload.length;
}
