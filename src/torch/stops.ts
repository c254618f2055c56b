/**
 * Stop strings and `text` for rows the worker generated: the worker stops only at stop tokens and max tokens (it
 * knows no tokenizer), so the rows are replayed here token by token, as engine/generate.ts does while it generates:
 * after each token, decode the ids so far (a stop token that ended the row left out); the first token whose text
 * contains a stop string ends the row there (that token included, text cut before the stop string, finish "stop").
 * A row's ids depend only on its seed and its own earlier ids, so the cut rows equal what a backend that stopped
 * early gives. Decode is called step by step (every row's first token, then every row's second, ...), in request
 * order within a step.
 */
import type { Decode, GenerationResult, SampleRequest } from "../engine/backend.ts";
import { finishStep } from "../engine/generate.ts";

/** A `sample` reply row. */
export interface WorkerSample {
  ids: ArrayLike<number>;
  logprobs: ArrayLike<number>;
  finish: string; // "eos" | "length"
}

/** The seam's results from the worker's rows; `stopTokens[i]` is what row i was sent. */
export function finishSamples(
  rows: readonly WorkerSample[],
  requests: readonly SampleRequest[],
  stopTokens: readonly (readonly number[])[],
  decode?: Decode,
): GenerationResult[] {
  const state = rows.map((raw, i) => {
    const req = requests[i];
    if (raw.ids.length !== raw.logprobs.length)
      throw new Error(`torch worker: sample row ${i} has ${raw.ids.length} ids and ${raw.logprobs.length} log-probs`);
    if (raw.ids.length > req.maxTokens)
      throw new Error(`torch worker: sample row ${i} has ${raw.ids.length} ids, over max_tokens ${req.maxTokens}`);
    return {
      i,
      raw,
      req,
      stops: new Set(stopTokens[i]),
      result: { ids: [], logprobs: [], text: decode ? "" : null, finishReason: "length" } as GenerationResult,
      done: req.maxTokens === 0,
    };
  });
  const decodeCopy = decode && ((ids: number[], row: number) => decode(ids.slice(), row)); // the caller may keep what it is given
  for (let k = 0; ; k++) {
    const active = state.filter((r) => !r.done);
    if (active.length === 0) break;
    for (const r of active) {
      if (k >= r.raw.ids.length)
        throw new Error(
          `torch worker: sample row ${r.i} ended after ${k} tokens (finish ${r.raw.finish}) without a stop token or max_tokens ${r.req.maxTokens}`,
        );
      const id = r.raw.ids[k];
      r.result.ids.push(id);
      r.result.logprobs.push(r.raw.logprobs[k]);
      const isStop = r.stops.has(id);
      if (isStop && (k !== r.raw.ids.length - 1 || r.raw.finish !== "eos"))
        throw new Error(`torch worker: sample row ${r.i} went on past stop token ${id} at position ${k}`);
      r.done = finishStep(r.result, r.req, isStop, decodeCopy, r.i);
    }
  }
  return state.map((r) => r.result);
}
