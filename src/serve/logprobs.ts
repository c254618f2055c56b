/**
 * The k most likely tokens at given positions of given sequences, for the API's `logprobs` / `top_logprobs`.
 * Generation reports only the chosen token's log-probability, so this is a second pass: one forward over the
 * whole sequence (prompt and generated tokens), then the LM head at the positions asked for, a chunk at a time.
 * The Backend seam has no such call yet; this reads the CPU backend's model directly.
 */
import type { CpuBackend } from "../engine/backend.ts";
import { packRows } from "../engine/batch.ts";
import { headLogits } from "../engine/head.ts";
import { logSoftmax } from "../engine/sample.ts";

export interface TopRow {
  tokens: readonly number[]; // (T) the whole sequence
  adapter: string | null;
  from: number; // first position whose token is predicted (≥ 1)
  k: number; // alternatives per position (0: only the chosen token)
}

export interface PositionLogprobs {
  logprob: number; // log p(tokens[t] | tokens[<t])
  top: { id: number; logprob: number }[]; // (k) most likely first; ties by lower id
}

/** Positions predicted per head chunk. */
const CHUNK = 32;

/** For each row, the log-probs of tokens[from..T−1] and the top k at each of those positions. */
export function topLogprobs(backend: CpuBackend, rows: readonly TopRow[]): PositionLogprobs[][] {
  const m = backend.model;
  const C = m.config.dim, V = m.config.vocabSize;
  return rows.map((r) => {
    if (r.tokens.length <= r.from) return [];
    const packed = packRows([{ tokens: r.tokens, adapter: backend.adapter(r.adapter) }], V);
    const { hidden } = m.forward(packed, false); // (T, C)
    const out: PositionLogprobs[] = [];
    for (let t0 = r.from; t0 < r.tokens.length; t0 += CHUNK) {
      const M = Math.min(CHUNK, r.tokens.length - t0);
      const h = hidden.subarray((t0 - 1) * C, (t0 - 1 + M) * C); // (M, C) states that predict tokens t0 .. t0+M−1
      const logits = new Float32Array(M * V); // (M, V)
      headLogits(m, logits, h, M);
      for (let i = 0; i < M; i++) {
        const lsm = logSoftmax(logits.subarray(i * V, (i + 1) * V));
        out.push({ logprob: lsm[r.tokens[t0 + i]], top: topK(lsm, r.k) });
      }
    }
    return out;
  });
}

/** The k largest entries of `x`, largest first (ties: lower index first). */
export function topK(x: ArrayLike<number>, k: number): { id: number; logprob: number }[] {
  const best: { id: number; logprob: number }[] = [];
  if (k <= 0) return best;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (best.length === k && !(v > best[k - 1].logprob)) continue;
    let j = best.length < k ? best.length : k - 1;
    while (j > 0 && v > best[j - 1].logprob) j--;
    best.splice(j, 0, { id: i, logprob: v });
    if (best.length > k) best.pop();
  }
  return best;
}
