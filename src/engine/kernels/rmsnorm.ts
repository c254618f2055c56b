/**
 * RMSNorm as Hugging Face's LlamaRMSNorm computes it: y = w ⊙ x / sqrt(mean(x²) + eps).
 */

/** out (N, C), rstd (N) = 1/sqrt(mean(x²)+eps) kept for backward; x (N, C), w (C). */
export function rmsnormForward(
  out: Float32Array,
  rstd: Float32Array | null,
  x: Float32Array,
  w: Float32Array,
  N: number,
  C: number,
  eps: number,
): void {
  for (let i = 0; i < N; i++) {
    const o = i * C;
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x[o + c] * x[o + c];
    const r = 1 / Math.sqrt(ss / C + eps);
    if (rstd) rstd[i] = r;
    for (let c = 0; c < C; c++) out[o + c] = w[c] * (x[o + c] * r);
  }
}

/**
 * dx (N, C) += dL/dx; dw (C) += dL/dw (skipped when null). dout (N, C), x (N, C), rstd (N), w (C).
 * With n = x·r: dx = r (w⊙g) − x r³/C · Σ (w⊙g⊙x).
 */
export function rmsnormBackward(
  dx: Float32Array,
  dw: Float32Array | null,
  dout: Float32Array,
  x: Float32Array,
  rstd: Float32Array,
  w: Float32Array,
  N: number,
  C: number,
): void {
  for (let i = 0; i < N; i++) {
    const o = i * C;
    const r = rstd[i];
    let dot = 0;
    for (let c = 0; c < C; c++) dot += w[c] * dout[o + c] * x[o + c];
    const k = (dot * r * r * r) / C;
    for (let c = 0; c < C; c++) {
      dx[o + c] += r * w[c] * dout[o + c] - k * x[o + c];
      if (dw) dw[c] += dout[o + c] * x[o + c] * r;
    }
  }
}
