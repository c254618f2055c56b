/**
 * Causal grouped-query attention for one row of a packed batch. Query head h reads key/value head
 * h / (NH / KVH), as transformers' repeat_kv does. Query t sits at position pos0 + t and sees keys 0 .. pos0 + t.
 * Layouts (element offsets given separately, so that a row can live inside a packed batch or a KV cache):
 *   q, out  (T, NH, HS)     k, v  (Tk, KVH, HS) with Tk ≥ pos0 + T     probs  (NH, T, Tk)
 */

export function attentionForward(
  out: Float32Array,
  outOff: number,
  probs: Float32Array | null, // (NH, T, Tk), kept for backward; null at inference
  q: Float32Array,
  qOff: number,
  k: Float32Array,
  kOff: number,
  v: Float32Array,
  vOff: number,
  T: number,
  Tk: number,
  pos0: number,
  NH: number,
  KVH: number,
  HS: number,
  scores: Float64Array, // scratch, length ≥ pos0 + T
): void {
  const group = NH / KVH;
  const scale = 1 / Math.sqrt(HS);
  const Q = NH * HS,
    KV = KVH * HS;
  for (let t = 0; t < T; t++) {
    const nKeys = pos0 + t + 1;
    for (let h = 0; h < NH; h++) {
      const qo = qOff + t * Q + h * HS;
      const kh = ((h / group) | 0) * HS;
      let max = -Infinity;
      for (let j = 0; j < nKeys; j++) {
        const ko = kOff + j * KV + kh;
        let s = 0;
        for (let d = 0; d < HS; d++) s += q[qo + d] * k[ko + d];
        s *= scale;
        scores[j] = s;
        if (s > max) max = s;
      }
      let sum = 0;
      for (let j = 0; j < nKeys; j++) {
        const e = Math.exp(scores[j] - max);
        scores[j] = e;
        sum += e;
      }
      const inv = 1 / sum;
      const oo = outOff + t * Q + h * HS;
      for (let d = 0; d < HS; d++) out[oo + d] = 0;
      const po = probs ? (h * T + t) * Tk : 0;
      for (let j = 0; j < nKeys; j++) {
        const p = scores[j] * inv;
        if (probs) probs[po + j] = p;
        const vo = vOff + j * KV + kh;
        for (let d = 0; d < HS; d++) out[oo + d] += p * v[vo + d];
      }
    }
  }
}

/**
 * Backward of attentionForward for a row that starts at position 0 (training: Tk = T).
 * Accumulates into dq (T, NH, HS), dk and dv (T, KVH, HS).
 */
export function attentionBackward(
  dq: Float32Array,
  dk: Float32Array,
  dv: Float32Array, // same offsets as q, k, v
  dout: Float32Array,
  outOff: number,
  probs: Float32Array, // (NH, T, T)
  q: Float32Array,
  qOff: number,
  k: Float32Array,
  kOff: number,
  v: Float32Array,
  vOff: number,
  T: number,
  NH: number,
  KVH: number,
  HS: number,
  dp: Float64Array, // scratch, length ≥ T
): void {
  const group = NH / KVH;
  const scale = 1 / Math.sqrt(HS);
  const Q = NH * HS,
    KV = KVH * HS;
  for (let h = 0; h < NH; h++) {
    const kh = ((h / group) | 0) * HS;
    for (let t = 0; t < T; t++) {
      const po = (h * T + t) * T;
      const go = outOff + t * Q + h * HS;
      const qo = qOff + t * Q + h * HS;
      let dot = 0;
      for (let j = 0; j <= t; j++) {
        const vo = vOff + j * KV + kh;
        let s = 0;
        for (let d = 0; d < HS; d++) s += dout[go + d] * v[vo + d];
        dp[j] = s;
        dot += probs[po + j] * s;
        const p = probs[po + j];
        const dvo = vo; // dv shares v's layout
        for (let d = 0; d < HS; d++) dv[dvo + d] += p * dout[go + d];
      }
      for (let j = 0; j <= t; j++) {
        const ds = probs[po + j] * (dp[j] - dot) * scale;
        if (ds === 0) continue;
        const ko = kOff + j * KV + kh;
        for (let d = 0; d < HS; d++) {
          dq[qo + d] += ds * k[ko + d];
          dk[ko + d] += ds * q[qo + d];
        }
      }
    }
  }
}
