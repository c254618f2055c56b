/**
 * The LM head and everything computed from its logits: log-probabilities of chosen tokens, entropies, and the
 * gradient of the weighted objective  L = −Σ w_i log p(target_i) − Σ e_i H_i  (weights already normalised).
 * With temperatures, p is softmax(logits / τ_i): the distribution a sampler at temperature τ_i draws from.
 * Logits are made a chunk of positions at a time, so a (N, V) matrix never exists.
 */
import type { Transformer } from "./transformer.ts";

export interface HeadQuery {
  positions: Int32Array; // (P) packed positions whose hidden state is read
  targets: Int32Array; // (P) token whose log-probability is wanted (−1: none, entropy only)
  weights: Float64Array | null; // (P) w_i, or null for no gradient
  entropyWeights: Float64Array | null; // (P) e_i, or null
  temperatures?: Float64Array | null; // (P) τ_i > 0, or null for 1 everywhere
}

export interface HeadResult {
  logprobs: Float64Array; // (P) log p(target_i); NaN where target is −1
  entropies: Float64Array; // (P) entropy of the predictive distribution, nats
}

/** logits (M, V) = hidden rows (M, C) · lmHead^T */
export function headLogits(m: Transformer, out: Float32Array, hidden: Float32Array, M: number): void {
  m.kernels.matmulXWt(out, hidden, m.weights.lmHead, M, m.config.dim, m.config.vocabSize, false);
}

/** Positions per chunk: logits of a chunk stay near 4 MB (at least 64 rows, at most 1024). */
function chunkRows(V: number): number {
  return Math.max(64, Math.min(1024, Math.floor(2 ** 20 / V)));
}

/**
 * Reads log-probs and entropies at the queried positions of `hidden` (N, C). With `dHidden` (N, C), also
 * accumulates dL/dhidden there and, when the base is trainable, dL/dlmHead.
 */
export function headForward(m: Transformer, hidden: Float32Array, q: HeadQuery, dHidden: Float32Array | null): HeadResult {
  const C = m.config.dim,
    V = m.config.vocabSize;
  const K = m.kernels,
    ws = m.workspace;
  const P = q.positions.length;
  const logprobs = new Float64Array(P);
  const entropies = new Float64Array(P);
  const CHUNK = chunkRows(V);
  const x = ws.take(Math.min(CHUNK, P) * C); // (chunk, C)
  const logits = ws.take(Math.min(CHUNK, P) * V); // (chunk, V), becomes dlogits when training
  const dx = dHidden ? ws.take(Math.min(CHUNK, P) * C) : null; // (chunk, C)
  const gHead = m.grad ? m.grad.lmHead : null;
  for (let p0 = 0; p0 < P; p0 += CHUNK) {
    const n = Math.min(CHUNK, P - p0);
    const pos = q.positions.subarray(p0, p0 + n);
    K.gatherRows(x, hidden, pos, n, C);
    headLogits(m, logits, x, n);
    const tau = q.temperatures ? q.temperatures.subarray(p0, p0 + n) : null;
    if (tau) scaleRows(logits, tau, n, V);
    const w = dx && q.weights ? q.weights.subarray(p0, p0 + n) : null;
    const e = dx && q.entropyWeights ? q.entropyWeights.subarray(p0, p0 + n) : null;
    const targets = q.targets.subarray(p0, p0 + n);
    K.headXent(logits, logprobs.subarray(p0, p0 + n), entropies.subarray(p0, p0 + n), targets, w, e, n, V, dx !== null);
    if (!dx) continue;
    let anyGrad = false;
    for (let i = 0; i < n && !anyGrad; i++) anyGrad = (w !== null && targets[i] >= 0 && w[i] !== 0) || (e !== null && e[i] !== 0);
    if (!anyGrad) continue;
    if (tau) scaleRows(logits, tau, n, V); // d/dlogits = (1/τ) · d/d(logits/τ)
    K.matmulXW(dx, logits, m.weights.lmHead, n, V, C, false);
    K.scatterAddRows(dHidden!, dx, pos, n, C);
    if (gHead) K.matmulXtY(gHead, logits, x, n, V, C);
  }
  ws.give(x, logits, dx);
  return { logprobs, entropies };
}

/** rows (n, V) ← rows / τ, row by row. */
function scaleRows(rows: Float32Array, tau: Float64Array, n: number, V: number): void {
  for (let i = 0; i < n; i++) {
    if (tau[i] === 1) continue;
    const inv = 1 / tau[i];
    for (let v = i * V, end = v + V; v < end; v++) rows[v] *= inv;
  }
}
