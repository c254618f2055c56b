/**
 * The k most likely tokens at given positions of given sequences (the HTTP API's `logprobs` / `top_logprobs`).
 * Generation reports only the chosen token's log-probability, so this is a second pass: one forward over the
 * whole sequence (prompt and generated tokens), then the LM head at the positions asked for, a chunk at a time.
 */
import { UserError } from "../util/errors.ts";
import { packRows } from "./batch.ts";
import { headLogits } from "./head.ts";
import type { Adapter } from "./lora.ts";
import { logSoftmax } from "./sample.ts";
import type { Transformer } from "./transformer.ts";

export interface TopLogprobsRow {
  tokens: ArrayLike<number>; // (T) the whole sequence
  adapter?: Adapter | null;
  from: number; // first position whose token is predicted (≥ 1)
  k: number; // alternatives per position (0: only the chosen token)
}

export interface PositionLogprobs {
  logprob: number; // log p(tokens[t] | tokens[<t]), nats
  top: { id: number; logprob: number }[]; // (k) most likely first; ties by lower id
}

/** Positions predicted per head chunk. */
const CHUNK = 32;

/** For each row, the log-probs of tokens[from..T−1] and the top k at each of those positions (one forward per row). */
export function topLogprobs(m: Transformer, rows: readonly TopLogprobsRow[]): PositionLogprobs[][] {
  const C = m.config.dim,
    V = m.config.vocabSize;
  rows.forEach((r, ri) => {
    if (!Number.isInteger(r.from) || r.from < 1)
      throw new UserError("E_BAD_FROM", `row ${ri}: first predicted token ${r.from} must be ≥ 1`);
    if (!Number.isInteger(r.k) || r.k < 0) throw new UserError("E_BAD_ARG", `row ${ri}: k must be an integer ≥ 0, got ${r.k}`);
  });
  return rows.map((r) => {
    if (r.tokens.length <= r.from) return [];
    const packed = packRows([{ tokens: r.tokens, adapter: r.adapter ?? null }], V);
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
    m.workspace.give(hidden);
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
