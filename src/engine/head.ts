/**
 * The LM head and everything computed from its logits: log-probabilities of chosen tokens, entropies, and the
 * gradient of the weighted objective  L = −Σ w_i log p(target_i) − Σ e_i H_i  (weights already normalised).
 * Logits are made a chunk of positions at a time, so a (N, V) matrix never exists.
 */
import { f32 } from "./tensor.ts";
import type { Transformer } from "./transformer.ts";

const CHUNK = 64;

export interface HeadQuery {
  positions: Int32Array; // (P) packed positions whose hidden state is read
  targets: Int32Array; // (P) token whose log-probability is wanted (−1: none, entropy only)
  weights: Float64Array | null; // (P) w_i, or null for no gradient
  entropyWeights: Float64Array | null; // (P) e_i, or null
}

export interface HeadResult {
  logprobs: Float64Array; // (P) log p(target_i); NaN where target is −1
  entropies: Float64Array; // (P) entropy of the predictive distribution, nats
}

/** logits (M, V) = hidden rows (M, C) · lmHead^T */
export function headLogits(m: Transformer, out: Float32Array, hidden: Float32Array, M: number): void {
  m.kernels.matmulXWt(out, hidden, m.weights.lmHead, M, m.config.dim, m.config.vocabSize, false);
}

/**
 * Reads log-probs and entropies at the queried positions of `hidden` (N, C). With `dHidden` (N, C), also
 * accumulates dL/dhidden there and, when the base is trainable, dL/dlmHead.
 */
export function headForward(m: Transformer, hidden: Float32Array, q: HeadQuery, dHidden: Float32Array | null): HeadResult {
  const C = m.config.dim, V = m.config.vocabSize;
  const P = q.positions.length;
  const logprobs = new Float64Array(P);
  const entropies = new Float64Array(P);
  const x = f32(CHUNK * C); // (chunk, C)
  const logits = f32(CHUNK * V); // (chunk, V), becomes dlogits when training
  const dx = dHidden ? f32(CHUNK * C) : null;
  const gHead = m.grad ? m.grad.lmHead : null;
  for (let p0 = 0; p0 < P; p0 += CHUNK) {
    const n = Math.min(CHUNK, P - p0);
    for (let i = 0; i < n; i++) x.set(hidden.subarray(q.positions[p0 + i] * C, (q.positions[p0 + i] + 1) * C), i * C);
    headLogits(m, logits, x, n);
    let anyGrad = false;
    for (let i = 0; i < n; i++) {
      const row = logits.subarray(i * V, (i + 1) * V);
      let max = -Infinity;
      for (let v = 0; v < V; v++) if (row[v] > max) max = row[v];
      let sum = 0;
      for (let v = 0; v < V; v++) sum += Math.exp(row[v] - max);
      const lse = max + Math.log(sum);
      let ent = 0;
      for (let v = 0; v < V; v++) {
        const lp = row[v] - lse;
        ent -= Math.exp(lp) * lp;
      }
      const target = q.targets[p0 + i];
      logprobs[p0 + i] = target >= 0 ? row[target] - lse : NaN;
      entropies[p0 + i] = ent;
      if (!dx) continue;
      // dL/dz_v = w (p_v − [v = target]) + e p_v (log p_v + H)
      const w = target >= 0 && q.weights ? q.weights[p0 + i] : 0;
      const e = q.entropyWeights ? q.entropyWeights[p0 + i] : 0;
      if (w === 0 && e === 0) {
        row.fill(0);
        continue;
      }
      anyGrad = true;
      for (let v = 0; v < V; v++) {
        const lp = row[v] - lse;
        const pv = Math.exp(lp);
        row[v] = w * pv + e * pv * (lp + ent);
      }
      if (target >= 0) row[target] -= w;
    }
    if (!dx || !anyGrad) continue;
    m.kernels.matmulXW(dx, logits, m.weights.lmHead, n, V, C, false);
    for (let i = 0; i < n; i++) {
      const o = q.positions[p0 + i] * C;
      for (let j = 0; j < C; j++) dHidden![o + j] += dx[i * C + j];
    }
    if (gHead) m.kernels.matmulXtY(gHead, logits, x, n, V, C);
  }
  return { logprobs, entropies };
}
