/**
 * Packed batches: rows of different lengths laid end to end (no padding). Every linear layer works on all N tokens
 * at once; attention works row by row. Rows name their adapter (or none); consecutive rows with the same adapter
 * form one segment for the low-rank products.
 */
import { UserError } from "../util/errors.ts";
import type { KVCache } from "./kv-cache.ts";
import type { Adapter } from "./lora.ts";
import { i32 } from "./tensor.ts";

export interface RowInput {
  tokens: ArrayLike<number>; // the row's new tokens
  adapter?: Adapter | null; // null/absent: the base model
  cache?: KVCache | null; // when given, the tokens continue the cached sequence and are appended to it
}

export interface PackedRow {
  start: number; // first token in the packed batch
  len: number; // tokens of this row
  pos0: number; // position of its first token (the cache length, or 0)
  adapter: Adapter | null;
  cache: KVCache | null;
}

export interface Segment {
  start: number;
  len: number;
  adapter: Adapter;
}

export interface Packed {
  N: number;
  tokens: Int32Array; // (N)
  rows: PackedRow[];
  segments: Segment[]; // token ranges that carry an adapter
}

export function packRows(rows: readonly RowInput[], vocabSize: number): Packed {
  let N = 0;
  for (const r of rows) N += r.tokens.length;
  const tokens = i32(N);
  const packedRows: PackedRow[] = [];
  const segments: Segment[] = [];
  let start = 0;
  rows.forEach((r, index) => {
    const len = r.tokens.length;
    const pos0 = r.cache ? r.cache.length : 0;
    if (r.cache && pos0 + len > r.cache.capacity) {
      throw new Error(`row ${index}: ${pos0 + len} positions exceed the KV cache capacity ${r.cache.capacity}`);
    }
    for (let t = 0; t < len; t++) {
      const id = r.tokens[t];
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new UserError("E_TOKEN_RANGE", `token id ${id} (row ${index}, position ${t}) is outside the vocabulary 0..${vocabSize - 1}`);
      }
      tokens[start + t] = id;
    }
    const adapter = r.adapter ?? null;
    packedRows.push({ start, len, pos0, adapter, cache: r.cache ?? null });
    if (adapter && len > 0) {
      const last = segments[segments.length - 1];
      if (last && last.adapter === adapter && last.start + last.len === start) last.len += len;
      else segments.push({ start, len, adapter });
    }
    start += len;
  });
  return { N, tokens, rows: packedRows, segments };
}
