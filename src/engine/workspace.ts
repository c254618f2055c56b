/**
 * A pool of activation buffers, so that a training step or a decode step does not allocate (and page-fault and
 * zero) hundreds of megabytes of fresh SharedArrayBuffers each time. `take(n)` returns a Float32Array of exactly n
 * floats (contents left over from earlier use, first element 64-byte aligned, see alignedShared) over a pooled
 * SharedArrayBuffer whose size is n rounded up to one of 8 sizes per doubling; `give` returns buffers once their
 * last reader is done. Buffers that are never given back are simply garbage-collected.
 */
import { alignedShared } from "./kernels/native.ts";

const MIN_BYTES = 4096;
const MAX_POOLED_BYTES = 2 ** 32; // beyond this much idle memory, given-back buffers are dropped

/** n bytes rounded up to 2^e · (8 + i)/8: at most 12.5% slack. */
function bucketBytes(n: number): number {
  if (n <= MIN_BYTES) return MIN_BYTES;
  const e = Math.floor(Math.log2(n)) - 3;
  const step = 2 ** e;
  return Math.ceil(n / step) * step;
}

export class Workspace {
  private readonly free = new Map<number, SharedArrayBuffer[]>(); // bucket bytes → idle buffers
  private readonly mine = new WeakMap<SharedArrayBuffer, { bucket: number; offset: number }>();
  private pooledBytes = 0;

  /**
   * A buffer of n floats, contents undefined: an idle one of n's size class, else the smallest idle one up to twice
   * that size, else a fresh one. Steps whose token counts differ by a few percent fall into neighbouring classes;
   * without the look upwards each such step allocated (and page-faulted) its activations afresh.
   */
  take(n: number): Float32Array {
    const bucket = bucketBytes(Math.max(1, n) * 4);
    let sab: SharedArrayBuffer | undefined;
    for (let b = bucket; b <= 2 * bucket && !sab; b = bucketBytes(b + 1)) {
      sab = this.free.get(b)?.pop();
      if (sab) this.pooledBytes -= b;
    }
    if (!sab) {
      const fresh = alignedShared(bucket);
      sab = fresh.sab;
      this.mine.set(sab, { bucket, offset: fresh.offset });
    }
    return new Float32Array(sab, this.mine.get(sab)!.offset, n);
  }

  /** A buffer of n zeros. */
  takeZeroed(n: number): Float32Array {
    return this.take(n).fill(0);
  }

  /** Hands buffers back (null entries and buffers this pool did not make are ignored). */
  give(...bufs: (Float32Array | null | undefined)[]): void {
    for (const b of bufs) {
      const meta = b && b.buffer instanceof SharedArrayBuffer ? this.mine.get(b.buffer) : undefined;
      if (!meta) continue;
      const sab = b!.buffer as SharedArrayBuffer;
      if (this.pooledBytes + meta.bucket > MAX_POOLED_BYTES) continue;
      let list = this.free.get(meta.bucket);
      if (!list) this.free.set(meta.bucket, (list = []));
      if (list.includes(sab)) throw new Error("a workspace buffer was given back twice");
      list.push(sab);
      this.pooledBytes += meta.bucket;
    }
  }

  /** Drops every idle buffer. */
  clear(): void {
    this.free.clear();
    this.pooledBytes = 0;
  }
}
