/**
 * Attention over all rows of a packed batch in one call (the reference: a loop over attention.ts's one-row
 * kernels). A row plan is an Int32Array (R, 3):
 *   packed rows (keys in the batch, positions from 0):  [start, len, probsOffset]   probs of row r: (NH, len, len)
 *   cached rows (keys in the row's KV cache):            [start, len, pos0]
 * Layouts: q, out (N, NH, HS); k, v (N, KVH, HS); a cache (capacity, KVH, HS) with positions 0 .. pos0+len−1 filled.
 * Probabilities are written whole: zero above the causal diagonal.
 */
import { attentionBackward, attentionForward } from "./attention.ts";

/** out (N, NH, HS); probs (Σ NH·len²) or null at inference. */
export function attentionRows(
  out: Float32Array,
  probs: Float32Array | null,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  rows: Int32Array,
  NH: number,
  KVH: number,
  HS: number,
): void {
  const Q = NH * HS,
    KV = KVH * HS;
  for (let r = 0; r < rows.length / 3; r++) {
    const start = rows[3 * r],
      len = rows[3 * r + 1];
    if (len === 0) continue;
    const p = probs ? probs.subarray(rows[3 * r + 2], rows[3 * r + 2] + NH * len * len) : null;
    p?.fill(0);
    attentionForward(out, start * Q, p, q, start * Q, k, start * KV, v, start * KV, len, len, 0, NH, KVH, HS, new Float64Array(len));
  }
}

/**
 * Rows that continue their own caches: row r's new keys and values (rows start .. start+len−1 of k, v (N, KVH, HS))
 * are written into kCaches[r], vCaches[r] at positions pos0 .., then its queries attend to positions 0 .. pos0+len−1.
 */
export function attentionCachedRows(
  out: Float32Array,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  kCaches: readonly Float32Array[],
  vCaches: readonly Float32Array[],
  rows: Int32Array,
  NH: number,
  KVH: number,
  HS: number,
): void {
  const Q = NH * HS,
    KV = KVH * HS;
  for (let r = 0; r < rows.length / 3; r++) {
    const start = rows[3 * r],
      len = rows[3 * r + 1],
      pos0 = rows[3 * r + 2];
    if (len === 0) continue;
    kCaches[r].set(k.subarray(start * KV, (start + len) * KV), pos0 * KV);
    vCaches[r].set(v.subarray(start * KV, (start + len) * KV), pos0 * KV);
    const Tk = kCaches[r].length / KV;
    attentionForward(
      out,
      start * Q,
      null,
      q,
      start * Q,
      kCaches[r],
      0,
      vCaches[r],
      0,
      len,
      Tk,
      pos0,
      NH,
      KVH,
      HS,
      new Float64Array(pos0 + len),
    );
  }
}

/** Backward of attentionRows: accumulates into dq (N, NH, HS), dk and dv (N, KVH, HS). */
export function attentionRowsBackward(
  dq: Float32Array,
  dk: Float32Array,
  dv: Float32Array,
  dout: Float32Array,
  probs: Float32Array,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  rows: Int32Array,
  NH: number,
  KVH: number,
  HS: number,
): void {
  const Q = NH * HS,
    KV = KVH * HS;
  for (let r = 0; r < rows.length / 3; r++) {
    const start = rows[3 * r],
      len = rows[3 * r + 1];
    if (len === 0) continue;
    const p = probs.subarray(rows[3 * r + 2], rows[3 * r + 2] + NH * len * len);
    attentionBackward(
      dq,
      dk,
      dv,
      dout,
      start * Q,
      p, // dq, dk, dv at the offsets of q, k, v
      q,
      start * Q,
      k,
      start * KV,
      v,
      start * KV,
      len,
      NH,
      KVH,
      HS,
      new Float64Array(len),
    );
  }
}
