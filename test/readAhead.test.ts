/** Read-ahead: reads finishing out of order still yield frames in the order they were started. */
import { describe, expect, it } from 'vitest';
import { FrameReadAhead } from '../shared/transport/readAhead.js';

function deferred(): { promise: Promise<number>; resolve(n: number): void; reject(e: Error): void } {
  let resolve!: (n: number) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<number>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('FrameReadAhead', () => {
  it('gives frames in the order their reads started, whatever order the reads finish in', async () => {
    const reads = new FrameReadAhead(2);
    const [a, b] = [Buffer.from('a'), Buffer.from('b')];
    const [ra, rb] = [deferred(), deferred()];
    const settled: string[] = [];
    reads.add(a, ra.promise, () => settled.push('a'));
    reads.add(b, rb.promise, () => settled.push('b'));
    expect(reads.full).toBe(true);
    rb.resolve(1);
    await rb.promise;
    expect(settled).toEqual(['b']);
    // b is done but a is not: nothing may go out yet.
    expect(reads.next()).toBeUndefined();
    ra.resolve(1);
    await ra.promise;
    expect(reads.next()?.frame).toBe(a);
    expect(reads.next()?.frame).toBe(b);
    expect(reads.isEmpty).toBe(true);
  });

  it('reports a failed read, and forgets reads cleared while in flight', async () => {
    const reads = new FrameReadAhead(2);
    const failing = deferred();
    const errors: unknown[] = [];
    reads.add(Buffer.alloc(1), failing.promise, (error) => errors.push(error));
    failing.reject(new Error('EIO'));
    await failing.promise.catch(() => {});
    await Promise.resolve();
    expect(errors).toHaveLength(1);

    const late = deferred();
    let called = false;
    const frame = Buffer.alloc(1);
    const cleared = new FrameReadAhead(1);
    cleared.add(frame, late.promise, () => {
      called = true;
    });
    expect(cleared.clear()).toEqual([frame]);
    late.resolve(1);
    await late.promise;
    await Promise.resolve();
    expect(called).toBe(false);
    expect(cleared.next()).toBeUndefined();
  });
});
