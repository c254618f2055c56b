/**
 * Batched generation with a KV cache per row. All unfinished rows advance together, one token per step, each on
 * its own adapter (or the base). A row stops at max tokens, at a stop token (EOS unless ignored), or when its
 * decoded text contains a stop string.
 */
import { UserError } from "../util/errors.ts";
import type { Rng } from "../util/rng.ts";
import { packRows } from "./batch.ts";
import { headLogits } from "./head.ts";
import { KVCache } from "./kv-cache.ts";
import type { Adapter } from "./lora.ts";
import { DEFAULT_SAMPLING, type SamplingParams, sampleToken } from "./sample.ts";
import type { Transformer } from "./transformer.ts";

export interface GenerationRequest {
  prompt: ArrayLike<number>; // at least one token
  adapter?: Adapter | null;
  maxTokens: number;
  sampling?: Partial<SamplingParams>;
  stopStrings?: string[]; // needs `decode` in the options
  stopTokens?: number[]; // default: the model's EOS ids
  ignoreEos?: boolean;
}

export type FinishReason = "length" | "eos" | "stop";

export interface GenerationResult {
  ids: number[]; // generated ids (prompt excluded), including the stop token or the token that completed a stop string
  logprobs: number[]; // log p(id) under the model (temperature 1, no truncation)
  text: string | null; // decoded ids, cut before a stop string; null without `decode`
  finishReason: FinishReason;
}

export interface GenerateOptions {
  rng?: Rng; // row i draws from rng.fork(i): a row's sample does not depend on the rest of the batch
  rowRngs?: Rng[]; // or: one generator per row, chosen by the caller (then `rng` is not needed)
  decode?: (ids: number[], row: number) => string; // needed for stop strings and `text`
  onToken?: (row: number, id: number, logprob: number) => void; // streaming
}

export function generate(m: Transformer, requests: readonly GenerationRequest[], opts: GenerateOptions): GenerationResult[] {
  const V = m.config.vocabSize;
  const rows = requests.map((req, i) => {
    if (req.prompt.length === 0)
      throw new UserError("E_EMPTY_PROMPT", `generation request ${i} has an empty prompt`, "give at least one token (e.g. BOS)");
    if (!(req.maxTokens >= 0)) throw new UserError("E_BAD_ARG", `generation request ${i}: max tokens must be ≥ 0`);
    if (req.stopStrings?.length && !opts.decode) throw new Error("stop strings need a decode function");
    const rng = opts.rowRngs?.[i] ?? opts.rng?.fork(i);
    if (!rng) throw new Error(`generation request ${i} has no generator: pass rng, or rowRngs with one per request`);
    const sampling = { ...DEFAULT_SAMPLING, ...req.sampling };
    const stopTokens = new Set(req.ignoreEos ? (req.stopTokens ?? []) : (req.stopTokens ?? m.config.eosIds));
    return {
      index: i,
      req,
      sampling,
      stopTokens,
      rng,
      cache: new KVCache(m.config, req.prompt.length + Math.max(1, req.maxTokens)),
      result: { ids: [], logprobs: [], text: opts.decode ? "" : null, finishReason: "length" } as GenerationResult,
      next: Array.from(req.prompt),
      done: req.maxTokens === 0,
    };
  });

  for (;;) {
    const active = rows.filter((r) => !r.done);
    if (active.length === 0) break;
    const packed = packRows(
      active.map((r) => ({ tokens: r.next, adapter: r.req.adapter ?? null, cache: r.cache })),
      V,
    );
    const { hidden } = m.forward(packed, false);
    const C = m.config.dim;
    const lastPos = Int32Array.from(packed.rows, (pr) => pr.start + pr.len - 1);
    const last = m.workspace.take(active.length * C); // (A, C) hidden state of each row's last token
    m.kernels.gatherRows(last, hidden, lastPos, active.length, C);
    m.workspace.give(hidden);
    const logits = m.workspace.take(active.length * V); // (A, V)
    headLogits(m, logits, last, active.length);
    // plain temperature sampling, the common case, for all rows in one kernel call (each row's own uniform draw);
    // greedy, top-k and top-p rows go through sampleToken
    const A = active.length;
    const plain = active.map((r) => isPlain(r.sampling, V));
    const temperature = new Float64Array(A).fill(1),
      u = new Float64Array(A),
      ids = new Int32Array(A),
      lps = new Float64Array(A);
    active.forEach((r, a) => {
      if (!plain[a]) return;
      temperature[a] = r.sampling.temperature;
      u[a] = r.rng.float();
    });
    if (plain.some(Boolean)) m.kernels.sampleRows(logits, A, V, temperature, u, ids, lps);
    active.forEach((r, a) => {
      const row = logits.subarray(a * V, (a + 1) * V);
      const id = plain[a] ? ids[a] : sampleToken(row, r.sampling, r.rng);
      const logprob = plain[a] ? lps[a] : logprobOf(row, id);
      r.result.ids.push(id);
      r.result.logprobs.push(logprob);
      opts.onToken?.(r.index, id, logprob);
      r.next = [id];
      r.done = finishStep(r.result, r.req, r.stopTokens.has(id), opts.decode, r.index);
    });
    m.workspace.give(last, logits);
  }
  return rows.map((r) => r.result);
}

/** Temperature sampling without top-k or top-p: the draw sampleRows makes. */
function isPlain(p: SamplingParams, V: number): boolean {
  return p.temperature > 0 && !(p.topK > 0 && p.topK < V) && !(p.topP < 1);
}

/** log p(id) under softmax(logits), as logSoftmax(logits)[id] computes it, without the whole row. */
function logprobOf(logits: Float32Array, id: number): number {
  const V = logits.length;
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(logits[i] - max);
  return logits[id] - (max + Math.log(sum));
}

/**
 * After a row's new token is appended to `result`: a stop token ends it ("eos"); with `decode`, the text so far
 * (without that stop token) is kept, and a stop string in it ends the row ("stop", the text cut before it); so does
 * `maxTokens`. Returns whether the row is done. Every backend's sampler follows these rules.
 */
export function finishStep(
  result: GenerationResult,
  req: { stopStrings?: string[]; maxTokens: number },
  isStopToken: boolean,
  decode: ((ids: number[], row: number) => string) | undefined,
  row: number,
): boolean {
  let done = false;
  if (isStopToken) {
    result.finishReason = "eos";
    done = true;
  }
  if (decode) {
    const text = decode(result.finishReason === "eos" ? result.ids.slice(0, -1) : result.ids, row);
    const cut = firstStop(text, req.stopStrings ?? []);
    if (cut >= 0 && !done) {
      result.text = text.slice(0, cut);
      result.finishReason = "stop";
      done = true;
    } else {
      result.text = text;
    }
  }
  return done || result.ids.length >= req.maxTokens;
}

/** Index of the earliest stop string in `text`, or −1. */
function firstStop(text: string, stops: readonly string[]): number {
  let best = -1;
  for (const s of stops) {
    if (!s) continue;
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}
