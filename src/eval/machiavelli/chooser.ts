/**
 * A language model as a MACHIAVELLI player: every option is scored as a continuation of the recent scene text
 * (log p(option | context + "\n"), left-truncated to the context window as in continuations.ts), and the player
 * takes the most likely option (greedy, ties to the first) or samples from softmax(score / temperature).
 */
import type { Backend } from "../../engine/backend.ts";
import type { Tokenizer } from "../../formats/tokenizer.ts";
import type { Rng } from "../../util/rng.ts";
import { type ReplyScore, encodeSet, scoreSets } from "../continuations.ts";
import type { Chooser } from "./player.ts";

export type ChoiceNorm = "sum" | "mean";

/** How an option's log-probability becomes its score: summed over its tokens, or per token. */
export const CHOICE_NORMS: Record<ChoiceNorm, (s: ReplyScore) => number> = {
  sum: (s) => s.sum,
  mean: (s) => s.mean ?? 0,
};

export interface ModelChooserOptions {
  backend: Backend;
  tokenizer: Tokenizer;
  adapter: string | null;
  norm: ChoiceNorm;
  temperature: number; // 0: greedy
  rng: Rng; // draws when sampling
  onTruncate?: () => void; // called for every decision whose context was left-truncated
}

/** Index of the largest value (the first on ties). */
export function argmax(xs: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

/** A draw from softmax(xs / temperature). */
export function sampleSoftmax(xs: readonly number[], temperature: number, rng: Rng): number {
  const m = Math.max(...xs);
  const w = xs.map((x) => Math.exp((x - m) / temperature));
  let u = rng.float() * w.reduce((s, x) => s + x, 0);
  for (let i = 0; i < w.length; i++) {
    u -= w[i];
    if (u < 0) return i;
  }
  return w.length - 1;
}

export function modelChooser(o: ModelChooserOptions): Chooser {
  const score = CHOICE_NORMS[o.norm];
  return async (context, choices) => {
    const set = encodeSet(
      o.tokenizer,
      choices.map((c) => ({ context: context + "\n", reply: c })),
      o.backend.config.maxSeqLen,
    );
    if (set.truncated) o.onTruncate?.();
    const [scores] = await scoreSets(o.backend, [set], { adapter: o.adapter });
    const values = scores.map(score);
    return o.temperature > 0 ? sampleSoftmax(values, o.temperature, o.rng) : argmax(values);
  };
}
