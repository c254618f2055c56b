/**
 * Reference matrix products (plain TypeScript, accumulation in float64 registers). Weights follow PyTorch's
 * Linear convention, W (N, K): y = x W^T. The three products cover a linear layer's forward and backward:
 *   forward:           y  (M, N)  = x  (M, K) · W^T
 *   backward, input:   dx (M, K) += dy (M, N) · W
 *   backward, weight:  dW (N, K) += dy^T (N, M) · x (M, K)
 * Each product is scaled by `alpha` (default 1) before it is stored or added: LoRA's scale rides along for free.
 */

/** out (M, N) = [out +] alpha · x (M, K) · w (N, K)^T */
export function matmulXWt(
  out: Float32Array,
  x: Float32Array,
  w: Float32Array,
  M: number,
  K: number,
  N: number,
  accumulate: boolean,
  alpha = 1,
): void {
  for (let i = 0; i < M; i++) {
    const xo = i * K;
    const oo = i * N;
    let j = 0;
    for (; j + 3 < N; j += 4) {
      const w0 = j * K,
        w1 = w0 + K,
        w2 = w1 + K,
        w3 = w2 + K;
      let s0 = 0,
        s1 = 0,
        s2 = 0,
        s3 = 0;
      for (let k = 0; k < K; k++) {
        const a = x[xo + k];
        s0 += a * w[w0 + k];
        s1 += a * w[w1 + k];
        s2 += a * w[w2 + k];
        s3 += a * w[w3 + k];
      }
      if (alpha !== 1) {
        s0 *= alpha;
        s1 *= alpha;
        s2 *= alpha;
        s3 *= alpha;
      }
      if (accumulate) {
        out[oo + j] += s0;
        out[oo + j + 1] += s1;
        out[oo + j + 2] += s2;
        out[oo + j + 3] += s3;
      } else {
        out[oo + j] = s0;
        out[oo + j + 1] = s1;
        out[oo + j + 2] = s2;
        out[oo + j + 3] = s3;
      }
    }
    for (; j < N; j++) {
      const wo = j * K;
      let s = 0;
      for (let k = 0; k < K; k++) s += x[xo + k] * w[wo + k];
      s *= alpha;
      out[oo + j] = accumulate ? out[oo + j] + s : s;
    }
  }
}

/** out (M, K) = [out +] alpha · dy (M, N) · w (N, K) */
export function matmulXW(
  out: Float32Array,
  dy: Float32Array,
  w: Float32Array,
  M: number,
  N: number,
  K: number,
  accumulate: boolean,
  alpha = 1,
): void {
  const acc = new Float64Array(K);
  for (let i = 0; i < M; i++) {
    const oo = i * K;
    const into = accumulate && alpha === 1; // sum straight onto out's values (one rounding)
    if (into) for (let k = 0; k < K; k++) acc[k] = out[oo + k];
    else acc.fill(0);
    const dyo = i * N;
    for (let n = 0; n < N; n++) {
      const a = dy[dyo + n];
      if (a === 0) continue;
      const wo = n * K;
      for (let k = 0; k < K; k++) acc[k] += a * w[wo + k];
    }
    if (into) for (let k = 0; k < K; k++) out[oo + k] = acc[k];
    else if (accumulate) for (let k = 0; k < K; k++) out[oo + k] += alpha * acc[k];
    else for (let k = 0; k < K; k++) out[oo + k] = alpha * acc[k];
  }
}

/** out (N, K) += alpha · dy (M, N)^T · x (M, K) */
export function matmulXtY(out: Float32Array, dy: Float32Array, x: Float32Array, M: number, N: number, K: number, alpha = 1): void {
  const acc = new Float64Array(K);
  for (let n = 0; n < N; n++) {
    const oo = n * K;
    if (alpha === 1) for (let k = 0; k < K; k++) acc[k] = out[oo + k];
    else acc.fill(0);
    for (let m = 0; m < M; m++) {
      const a = dy[m * N + n];
      if (a === 0) continue;
      const xo = m * K;
      for (let k = 0; k < K; k++) acc[k] += a * x[xo + k];
    }
    if (alpha === 1) for (let k = 0; k < K; k++) out[oo + k] = acc[k];
    else for (let k = 0; k < K; k++) out[oo + k] += alpha * acc[k];
  }
}
