/**
 * Buffers. Every large buffer of the engine is a Float32Array over a SharedArrayBuffer, so that worker threads can
 * read the frozen base weights and write activations without copies. Large ones start on a 64-byte boundary
 * (the buffer has a few spare bytes before the view: use byteOffset when viewing `.buffer`).
 */
import { alignedShared } from "./kernels/native.ts";

export function f32(n: number): Float32Array {
  if (n < 4096) return new Float32Array(new SharedArrayBuffer(Math.max(0, n) * 4));
  const { sab, offset } = alignedShared(n * 4); // rows start on cache lines, for the native kernels' vector loads
  return new Float32Array(sab, offset, n);
}

export function i32(n: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(Math.max(0, n) * 4));
}

/** A named view into a flat parameter buffer. */
export interface ParamTensor {
  name: string;
  shape: number[];
  view: Float32Array;
}

/** All parameters of one kind (a base model, or one LoRA adapter) in one allocation, with views from a size table. */
export interface ParamSet {
  data: Float32Array;
  tensors: ParamTensor[];
}

/** Lays out `table` (name → shape) in one buffer (`data`, when given, must have exactly the total size). */
export function layoutParams(table: { name: string; shape: number[] }[], data?: Float32Array): ParamSet {
  const total = table.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const buf = data ?? f32(total);
  if (buf.length !== total) throw new Error(`layoutParams: buffer has ${buf.length} floats, layout needs ${total}`);
  let off = 0;
  const tensors = table.map(({ name, shape }) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const view = buf.subarray(off, off + n);
    off += n;
    return { name, shape, view };
  });
  return { data: buf, tensors };
}

export function findTensor(set: ParamSet, name: string): ParamTensor {
  const t = set.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`no tensor named ${name}`);
  return t;
}
