/**
 * HH-RLHF preference accuracy (Bai et al. 2022, Anthropic/hh-rlhf): each record holds two whole dialogues,
 * `chosen` and `rejected`, that differ in the final assistant reply. Each is split at its last "\n\nAssistant:";
 * the model prefers the pair's chosen reply when log p(chosen reply | dialogue) is higher than the rejected one's.
 *
 * Two comparisons: summed log-probability (the reply's probability; favours short replies) and mean log-probability
 * per reply token (length-normalised). A tie counts as half a correct answer; ties are reported. An empty reply
 * has summed log-prob 0 and no per-token value: its per-token comparison is a tie. Rates come with 95% Wilson
 * score intervals.
 */
import type { Backend } from "../engine/backend.ts";
import { readTextFile } from "../formats/text-data.ts";
import type { Tokenizer } from "../formats/tokenizer.ts";
import { UserError } from "../util/errors.ts";
import { type EncodedSet, type ReplyScore, encodeSet, preferenceCredit, scoreSets } from "./continuations.ts";
import { type Mean, type Rate, mean, rate } from "./stats.ts";

export const ASSISTANT_MARKER = "\n\nAssistant:";

export interface HhPair {
  index: number; // 0-based line number among the file's records
  chosen: { prompt: string; reply: string };
  rejected: { prompt: string; reply: string };
}

/** Splits a dialogue at its last "\n\nAssistant:": the prompt ends with the marker, the reply is what follows. */
export function splitDialogue(text: string): { prompt: string; reply: string } | null {
  const i = text.lastIndexOf(ASSISTANT_MARKER);
  if (i < 0) return null;
  const cut = i + ASSISTANT_MARKER.length;
  return { prompt: text.slice(0, cut), reply: text.slice(cut) };
}

/** Reads HH-RLHF records ({chosen, rejected} per line) from a .jsonl or .jsonl.gz file; the first `limit` if given. */
export function readHhPairs(file: string, limit?: number): HhPair[] {
  if (!/\.jsonl(\.gz)?$/.test(file))
    throw new UserError("E_BAD_DATA", `${file}: expected a .jsonl or .jsonl.gz file of {chosen, rejected} records`);
  const lines = readTextFile(file).split("\n");
  const pairs: HhPair[] = [];
  for (let ln = 0; ln < lines.length && (limit === undefined || pairs.length < limit); ln++) {
    const line = lines[ln];
    if (!line.trim()) continue;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      throw new UserError("E_BAD_JSONL", `${file}:${ln + 1}: not valid JSON`);
    }
    const r = rec as Record<string, unknown>;
    if (typeof r?.chosen !== "string" || typeof r?.rejected !== "string") {
      throw new UserError(
        "E_BAD_DATA",
        `${file}:${ln + 1}: expected string fields "chosen" and "rejected", found keys ${JSON.stringify(Object.keys(r ?? {}))}`,
        'HH-RLHF records are {"chosen": dialogue, "rejected": dialogue}',
      );
    }
    const chosen = splitDialogue(r.chosen),
      rejected = splitDialogue(r.rejected);
    if (!chosen || !rejected) {
      throw new UserError("E_BAD_DATA", `${file}:${ln + 1}: the ${chosen ? "rejected" : "chosen"} dialogue has no "\\n\\nAssistant:" turn`);
    }
    pairs.push({ index: pairs.length, chosen, rejected });
  }
  if (pairs.length === 0) throw new UserError("E_BAD_DATA", `${file}: no records`);
  return pairs;
}

/** Encodes every pair for a context window of `window` tokens (left truncation, see continuations.ts). */
export function encodePairs(tok: Tokenizer, pairs: readonly HhPair[], window: number): EncodedSet[] {
  return pairs.map((p) =>
    encodeSet(
      tok,
      [
        { context: p.chosen.prompt, reply: p.chosen.reply },
        { context: p.rejected.prompt, reply: p.rejected.reply },
      ],
      window,
    ),
  );
}

export interface PairScore {
  index: number;
  chosen: ReplyScore;
  rejected: ReplyScore;
}

/** Scores both replies of every pair with one system. */
export async function scorePairs(
  backend: Backend,
  pairs: readonly HhPair[],
  encoded: readonly EncodedSet[],
  adapter: string | null,
  onProgress?: (done: number) => void,
): Promise<PairScore[]> {
  const scores = await scoreSets(backend, encoded, { adapter, onProgress });
  return scores.map(([chosen, rejected], i) => ({ index: pairs[i].index, chosen, rejected }));
}

export interface HhSummary {
  n: number;
  accuracy: Rate; // summed log-probs
  accuracy_per_token: Rate; // mean log-prob per reply token
  ties: number; // pairs whose summed log-probs are equal
  ties_per_token: number;
  margin: Mean; // log p(chosen) − log p(rejected), summed, nats
  margin_per_token: Mean;
}

export function summarizeHh(scores: readonly PairScore[]): HhSummary {
  let correct = 0,
    correctTok = 0,
    ties = 0,
    tiesTok = 0;
  const margins: number[] = [],
    marginsTok: number[] = [];
  for (const s of scores) {
    const c = preferenceCredit([s.chosen.sum, s.rejected.sum], 0);
    const ct = preferenceCredit([s.chosen.mean, s.rejected.mean], 0);
    correct += c;
    correctTok += ct;
    if (c === 0.5) ties++;
    if (ct === 0.5) tiesTok++;
    margins.push(s.chosen.sum - s.rejected.sum);
    if (s.chosen.mean !== null && s.rejected.mean !== null) marginsTok.push(s.chosen.mean - s.rejected.mean);
  }
  const n = scores.length;
  return {
    n,
    accuracy: rate(correct, n),
    accuracy_per_token: rate(correctTok, n),
    ties,
    ties_per_token: tiesTok,
    margin: mean(margins),
    margin_per_token: mean(marginsTok),
  };
}
