/**
 * The seam's rows as protocol rows (worker/PROTOCOL.md), checked first with the CPU backend's errors (E_BAD_FROM,
 * E_BAD_TEMPERATURE, E_BAD_WEIGHTS, E_EMPTY_PROMPT, E_TOKEN_RANGE, ...), so that a bad row fails the same way on
 * both backends and before anything is sent. Token lists become i32 tensors, weights f64.
 */
import type { SampleRequest, ScoreRequest, TopLogprobsRequest, TrainRow } from "../engine/backend.ts";
import type { ModelConfig } from "../engine/config.ts";
import { DEFAULT_SAMPLING } from "../engine/sample.ts";
import { targetQuery } from "../engine/score.ts";
import { UserError } from "../util/errors.ts";

/** A row's tokens as i32, each checked against the vocabulary (packRows' error). */
export function tokenTensor(tokens: ArrayLike<number>, V: number, row: number): Int32Array {
  const out = new Int32Array(tokens.length);
  for (let t = 0; t < tokens.length; t++) {
    const id = tokens[t];
    if (!Number.isInteger(id) || id < 0 || id >= V) {
      throw new UserError("E_TOKEN_RANGE", `token id ${id} (row ${row}, position ${t}) is outside the vocabulary 0..${V - 1}`);
    }
    out[t] = id;
  }
  return out;
}

/** The stop tokens a sample row is sent: its own, else the model's EOS ids (none of those with ignoreEos). */
export function stopTokensOf(r: SampleRequest, c: ModelConfig): number[] {
  return r.ignoreEos ? (r.stopTokens ?? []) : (r.stopTokens ?? c.eosIds);
}

export function sampleRows(
  requests: readonly SampleRequest[],
  seeds: readonly number[],
  c: ModelConfig,
  hasDecode: boolean,
): Record<string, unknown>[] {
  if (seeds.length !== requests.length) throw new Error(`sample: ${seeds.length} seeds for ${requests.length} requests`);
  return requests.map((r, i) => {
    if (r.prompt.length === 0)
      throw new UserError("E_EMPTY_PROMPT", `generation request ${i} has an empty prompt`, "give at least one token (e.g. BOS)");
    if (!(r.maxTokens >= 0)) throw new UserError("E_BAD_ARG", `generation request ${i}: max tokens must be ≥ 0`);
    if (r.stopStrings?.length && !hasDecode) throw new Error("stop strings need a decode function");
    const seed = seeds[i];
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`sample: seed ${seed} of request ${i} is not a u32`);
    const s = { ...DEFAULT_SAMPLING, ...r.sampling };
    return {
      prompt: tokenTensor(r.prompt, c.vocabSize, i),
      adapter: r.adapter,
      max_tokens: r.maxTokens,
      temperature: s.temperature,
      top_k: s.topK,
      top_p: s.topP,
      // ids outside the vocabulary can never be drawn: dropped, as the CPU backend never meets them
      stop_tokens: Int32Array.from(stopTokensOf(r, c).filter((id) => Number.isInteger(id) && id >= 0 && id < c.vocabSize)),
      seed,
    };
  });
}

export function scoreRows(requests: readonly ScoreRequest[], c: ModelConfig): Record<string, unknown>[] {
  targetQuery(requests); // E_BAD_FROM, E_BAD_TEMPERATURE
  return requests.map((r, i) => ({
    tokens: tokenTensor(r.tokens, c.vocabSize, i),
    adapter: r.adapter,
    from: r.from ?? 1,
    temperature: r.temperature ?? 1,
  }));
}

export function topLogprobsRows(requests: readonly TopLogprobsRequest[], c: ModelConfig): Record<string, unknown>[] {
  return requests.map((r, i) => {
    if (!Number.isInteger(r.from) || r.from < 1) throw new UserError("E_BAD_FROM", `row ${i}: first predicted token ${r.from} must be ≥ 1`);
    if (!Number.isInteger(r.k) || r.k < 0) throw new UserError("E_BAD_ARG", `row ${i}: k must be an integer ≥ 0, got ${r.k}`);
    return { tokens: tokenTensor(r.tokens, c.vocabSize, i), adapter: r.adapter, from: r.from, k: Math.min(r.k, c.vocabSize) };
  });
}

export function hiddenRows(
  requests: readonly { tokens: ArrayLike<number>; adapter: string | null }[],
  c: ModelConfig,
): Record<string, unknown>[] {
  return requests.map((r, i) => {
    if (r.tokens.length === 0) throw new UserError("E_EMPTY_PROMPT", `row ${i} has no tokens, so no last hidden state`);
    return { tokens: tokenTensor(r.tokens, c.vocabSize, i), adapter: r.adapter };
  });
}

export function trainRows(rows: readonly TrainRow[], normaliser: number, c: ModelConfig): Record<string, unknown>[] {
  if (!(normaliser > 0)) throw new UserError("E_BAD_NORMALISER", `objective normaliser must be positive, got ${normaliser}`);
  targetQuery(rows); // E_BAD_FROM, E_BAD_TEMPERATURE
  return rows.map((r, i) => {
    const T = r.tokens.length,
      from = r.from ?? 1;
    if (r.weights.length !== T) throw new UserError("E_BAD_WEIGHTS", `row ${i}: ${r.weights.length} weights for ${T} tokens`);
    if (r.entropyWeights && r.entropyWeights.length !== T)
      throw new UserError("E_BAD_WEIGHTS", `row ${i}: ${r.entropyWeights.length} entropy weights for ${T} tokens`);
    for (let t = 1; t < from; t++) {
      if (r.weights[t] !== 0) throw new UserError("E_BAD_WEIGHTS", `row ${i}: token ${t} has a weight but comes before from=${r.from}`);
    }
    return {
      tokens: tokenTensor(r.tokens, c.vocabSize, i),
      adapter: r.adapter,
      weights: Float64Array.from(r.weights),
      entropy_weights: r.entropyWeights ? Float64Array.from(r.entropyWeights) : null,
      from,
      temperature: r.temperature ?? 1,
    };
  });
}

/** Indices of the rows to send (`keep`), and a way to put the replies for them back among local results. */
export function subset<T>(
  n: number,
  keep: (i: number) => boolean,
): { sent: number[]; merge: (replies: readonly T[], local: (i: number) => T) => T[] } {
  const sent = Array.from({ length: n }, (_, i) => i).filter(keep);
  return {
    sent,
    merge: (replies, local) => {
      if (replies.length !== sent.length) throw new Error(`torch worker: ${replies.length} reply rows for ${sent.length} request rows`);
      const out = Array.from({ length: n }, (_, i) => i).map((i) => (keep(i) ? (undefined as T) : local(i)));
      sent.forEach((i, k) => (out[i] = replies[k]));
      return out;
    },
  };
}
