/**
 * Scoring: the log-probability of given tokens after a given prefix, batched. This is what rewards are made of.
 */
import { UserError } from "../util/errors.ts";
import { packRows } from "./batch.ts";
import { headForward } from "./head.ts";
import type { Adapter } from "./lora.ts";
import { i32 } from "./tensor.ts";
import type { Transformer } from "./transformer.ts";

export interface ScoreRow {
  tokens: ArrayLike<number>; // (T) prefix and scored tokens together
  adapter?: Adapter | null;
  from?: number; // first token index to score (default 1: everything after the first token)
  temperature?: number; // score under softmax(logits / temperature) (default 1)
}

export interface ScoreResult {
  logprobs: Float64Array; // (T) log p(tokens[t] | tokens[<t]); NaN for t < from
  entropies: Float64Array; // (T) entropy of the distribution that predicts tokens[t]; NaN for t < from
}

/**
 * Builds the head query that reads, for each row, the positions predicting tokens from..T−1, with each position's
 * temperature (null when every row scores at temperature 1).
 */
export function targetQuery(rows: readonly { tokens: ArrayLike<number>; from?: number; temperature?: number }[]): {
  positions: Int32Array;
  targets: Int32Array;
  owner: Int32Array;
  index: Int32Array;
  temperatures: Float64Array | null;
} {
  let P = 0;
  rows.forEach((r, ri) => {
    const from = r.from ?? 1;
    if (!Number.isInteger(from) || from < 1 || from > Math.max(1, r.tokens.length)) {
      throw new UserError("E_BAD_FROM", `row ${ri}: first scored token ${from} must be in 1..${r.tokens.length}`);
    }
    P += Math.max(0, r.tokens.length - from);
    if (r.temperature !== undefined && !(r.temperature > 0))
      throw new UserError("E_BAD_TEMPERATURE", `row ${ri}: temperature must be positive, got ${r.temperature}`);
  });
  const temperatures = rows.some((r) => (r.temperature ?? 1) !== 1) ? new Float64Array(P) : null;
  const positions = i32(P),
    targets = i32(P),
    owner = i32(P),
    index = i32(P);
  let p = 0,
    start = 0;
  rows.forEach((r, ri) => {
    for (let t = r.from ?? 1; t < r.tokens.length; t++, p++) {
      positions[p] = start + t - 1;
      targets[p] = r.tokens[t];
      owner[p] = ri;
      index[p] = t;
      if (temperatures) temperatures[p] = r.temperature ?? 1;
    }
    start += r.tokens.length;
  });
  return { positions, targets, owner, index, temperatures };
}

export function scoreRows(m: Transformer, rows: readonly ScoreRow[]): ScoreResult[] {
  const packed = packRows(
    rows.map((r) => ({ tokens: r.tokens, adapter: r.adapter ?? null })),
    m.config.vocabSize,
  );
  const { hidden } = m.forward(packed, false);
  const q = targetQuery(rows);
  const head = headForward(
    m,
    hidden,
    { positions: q.positions, targets: q.targets, weights: null, entropyWeights: null, temperatures: q.temperatures },
    null,
  );
  m.workspace.give(hidden);
  const out = rows.map((r) => ({
    logprobs: new Float64Array(r.tokens.length).fill(NaN),
    entropies: new Float64Array(r.tokens.length).fill(NaN),
  }));
  for (let p = 0; p < q.positions.length; p++) {
    out[q.owner[p]].logprobs[q.index[p]] = head.logprobs[p];
    out[q.owner[p]].entropies[q.index[p]] = head.entropies[p];
  }
  return out;
}
