/** A decoded frame. `payload` may share memory with the input it was decoded from. */
export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}
