/** Moving whole rows: gathering rows of a matrix by index, and adding rows back by index (their transpose). */

/** out (n, C): row i = src row idx[i]. */
export function gatherRows(out: Float32Array, src: Float32Array, idx: Int32Array, n: number, C: number): void {
  for (let i = 0; i < n; i++) out.set(src.subarray(idx[i] * C, (idx[i] + 1) * C), i * C);
}

/** dst row idx[i] += src row i, for i < n (an index may repeat: its rows add up). */
export function scatterAddRows(dst: Float32Array, src: Float32Array, idx: Int32Array, n: number, C: number): void {
  for (let i = 0; i < n; i++) {
    const o = idx[i] * C;
    for (let j = 0; j < C; j++) dst[o + j] += src[i * C + j];
  }
}
