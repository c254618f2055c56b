/**
 * The one training call every method reduces to:
 *   L = −( Σ_t w_t · log p(token_t | prefix) + Σ_t e_t · H_t ) / normaliser
 * with per-token weights w (and optional entropy weights e) chosen by the caller. Cross-entropy is w = 1 on the
 * targets; REINFORCE, A2C and PPO only compute other weights. Returns the per-token log-probs and entropies of the
 * same pass, and accumulates gradients into every trainable adapter of the batch (and the base, if trainable).
 */
import { UserError } from "../util/errors.ts";
import { packRows } from "./batch.ts";
import { headForward } from "./head.ts";
import type { Adapter } from "./lora.ts";
import { targetQuery } from "./score.ts";
import type { Transformer } from "./transformer.ts";

export interface ObjectiveRow {
  tokens: ArrayLike<number>; // (T)
  adapter?: Adapter | null;
  weights: ArrayLike<number>; // (T) w_t for token t; w_0 is unused (token 0 has no prefix)
  entropyWeights?: ArrayLike<number>; // (T) e_t, the entropy bonus of the distribution that predicts token t
  from?: number; // first token that can carry a weight (default 1); earlier positions are not scored at all
  temperature?: number; // p = softmax(logits / temperature), the policy a sampler at that temperature follows (default 1)
}

export interface ObjectiveResult {
  loss: number;
  logprobs: Float64Array[]; // per row (T); NaN before `from`
  entropies: Float64Array[]; // per row (T); NaN before `from`
}

export function objective(m: Transformer, rows: readonly ObjectiveRow[], normaliser = 1): ObjectiveResult {
  if (!(normaliser > 0)) throw new UserError("E_BAD_NORMALISER", `objective normaliser must be positive, got ${normaliser}`);
  const q = targetQuery(rows);
  const packed = packRows(
    rows.map((r) => ({ tokens: r.tokens, adapter: r.adapter ?? null })),
    m.config.vocabSize,
  );
  const { hidden, tape } = m.forward(packed, true);
  const P = q.positions.length;
  const weights = new Float64Array(P);
  const entropyWeights = rows.some((r) => r.entropyWeights) ? new Float64Array(P) : null;
  rows.forEach((r, ri) => {
    if (r.weights.length !== r.tokens.length) {
      throw new UserError("E_BAD_WEIGHTS", `row ${ri}: ${r.weights.length} weights for ${r.tokens.length} tokens`);
    }
    for (let t = 0; t < (r.from ?? 1); t++) {
      if (t > 0 && r.weights[t] !== 0)
        throw new UserError("E_BAD_WEIGHTS", `row ${ri}: token ${t} has a weight but comes before from=${r.from}`);
    }
  });
  for (let p = 0; p < P; p++) {
    const r = rows[q.owner[p]];
    weights[p] = r.weights[q.index[p]] / normaliser;
    if (entropyWeights && r.entropyWeights) entropyWeights[p] = r.entropyWeights[q.index[p]] / normaliser;
  }
  const dHidden = m.workspace.takeZeroed(hidden.length); // (N, C)
  const head = headForward(
    m,
    hidden,
    { positions: q.positions, targets: q.targets, weights, entropyWeights, temperatures: q.temperatures },
    dHidden,
  );
  m.workspace.give(hidden);
  m.backward(tape!, dHidden);
  m.workspace.give(dHidden);

  let loss = 0;
  const logprobs = rows.map((r) => new Float64Array(r.tokens.length).fill(NaN));
  const entropies = rows.map((r) => new Float64Array(r.tokens.length).fill(NaN));
  for (let p = 0; p < P; p++) {
    loss -= weights[p] * head.logprobs[p] + (entropyWeights ? entropyWeights[p] * head.entropies[p] : 0);
    logprobs[q.owner[p]][q.index[p]] = head.logprobs[p];
    entropies[q.owner[p]][q.index[p]] = head.entropies[p];
  }
  return { loss, logprobs, entropies };
}
