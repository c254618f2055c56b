/**
 * Scoring replies given a context: log p(reply | context), summed over the reply's tokens and per token, for sets
 * of replies that are compared with one another (a preference pair, the choices of a decision point).
 *
 * Tokens: the text context+reply is encoded as one string (BOS first when the tokenizer has one, as pretraining
 * streams are); the reply's tokens are those after the longest common prefix with the encoded context, so that a
 * tokenizer which merges across the boundary still gives each reply a well-defined set of scored tokens.
 *
 * Context window: a sequence longer than the model's context is left-truncated — BOS is kept, then as many of the
 * context's last tokens as fit after the longest reply of the set. All replies of a set keep the same number of
 * context tokens, so they are compared on the same evidence. A reply longer than the window minus one token is
 * itself cut to its first tokens (`replyTruncated`); that is reported, never silent.
 */
import type { Backend, ScoreRequest } from "../engine/backend.ts";
import type { Tokenizer } from "../formats/tokenizer.ts";

export interface Continuation {
  context: string;
  reply: string;
}

export interface EncodedRow {
  tokens: number[]; // (T) BOS?, kept context tokens, reply tokens
  from: number; // index of the first reply token
}

export interface EncodedSet {
  rows: EncodedRow[]; // one per reply, in order
  contextTokens: number; // the longest context of the set before truncation (BOS excluded)
  keptContext: number; // context tokens kept in front of every reply (BOS excluded)
  truncated: boolean; // some context was dropped (left truncation)
  replyTruncated: boolean; // some reply was cut to fit the window
}

export interface ReplyScore {
  sum: number; // Σ log p(reply token | everything before it), natural log; 0 for an empty reply
  mean: number | null; // sum / tokens; null for an empty reply
  tokens: number; // scored reply tokens
}

/** Text → ids with the pretraining convention: BOS (when the tokenizer has one), then the text's tokens. */
export function encodeText(tok: Tokenizer, text: string): number[] {
  const ids = tok.encode(text, { addSpecial: false });
  if (tok.bosId !== null) ids.unshift(tok.bosId);
  return ids;
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Encodes a set of replies for scoring in a window of `window` tokens (the model's context length). */
export function encodeSet(tok: Tokenizer, items: readonly Continuation[], window: number): EncodedSet {
  if (!(window >= 2)) throw new Error(`encodeSet: context window ${window} is too small`);
  const contextIds = new Map<string, number[]>();
  const parts = items.map((it) => {
    const full = encodeText(tok, it.context + it.reply);
    let ctx = contextIds.get(it.context);
    if (!ctx) contextIds.set(it.context, (ctx = encodeText(tok, it.context)));
    const lead = tok.bosId !== null && full[0] === tok.bosId ? 1 : 0;
    // at least one token in front of the reply: without BOS and without context, the first token is context
    const b = Math.max(commonPrefix(full, ctx), Math.min(full.length, 1));
    return { lead, body: full.slice(lead, b), reply: full.slice(b), bos: lead ? full[0] : null };
  });
  const lead = parts.some((p) => p.lead === 1) ? 1 : 0;
  const minContext = lead ? 0 : 1; // BOS alone can be the context
  const replyCap = window - lead - minContext;
  let replyTruncated = false;
  for (const p of parts) {
    if (p.reply.length > replyCap) {
      p.reply = p.reply.slice(0, replyCap);
      replyTruncated = true;
    }
  }
  const longestReply = Math.max(0, ...parts.map((p) => p.reply.length));
  const keep = window - lead - longestReply; // context tokens that fit in front of the longest reply
  const contextTokens = Math.max(0, ...parts.map((p) => p.body.length));
  let truncated = false;
  let keptContext = 0;
  const rows = parts.map((p) => {
    const body = p.body.length > keep ? p.body.slice(p.body.length - keep) : p.body;
    if (body.length < p.body.length) truncated = true;
    keptContext = Math.max(keptContext, body.length);
    const head = p.bos !== null ? [p.bos, ...body] : body;
    return { tokens: [...head, ...p.reply], from: head.length };
  });
  return { rows, contextTokens, keptContext, truncated, replyTruncated };
}

export interface ScoreSetsOptions {
  adapter: string | null;
  setsPerCall?: number; // sets sent to the backend per call (it chunks further by tokens); default 32
  onProgress?: (setsDone: number) => void;
}

/** Scores every reply of every set with one system (the base model or a named adapter). */
export async function scoreSets(backend: Backend, sets: readonly EncodedSet[], opts: ScoreSetsOptions): Promise<ReplyScore[][]> {
  const per = Math.max(1, opts.setsPerCall ?? 32);
  const out: ReplyScore[][] = [];
  for (let s0 = 0; s0 < sets.length; s0 += per) {
    const batch = sets.slice(s0, s0 + per);
    const requests: ScoreRequest[] = [];
    const where: [number, number][] = []; // (set in batch, row) of each request
    batch.forEach((set, si) =>
      set.rows.forEach((row, ri) => {
        if (row.tokens.length > row.from) {
          requests.push({ tokens: row.tokens, adapter: opts.adapter, from: row.from });
          where.push([si, ri]);
        }
      }),
    );
    const results = requests.length ? await backend.score(requests) : [];
    const scores: ReplyScore[][] = batch.map((set) => set.rows.map(() => ({ sum: 0, mean: null, tokens: 0 })));
    results.forEach((r, k) => {
      const [si, ri] = where[k];
      const row = batch[si].rows[ri];
      let sum = 0;
      for (let t = row.from; t < row.tokens.length; t++) sum += r.logprobs[t];
      const tokens = row.tokens.length - row.from;
      scores[si][ri] = { sum, mean: sum / tokens, tokens };
    });
    out.push(...scores);
    opts.onProgress?.(Math.min(sets.length, s0 + per));
  }
  return out;
}

/**
 * Credit for option `target` among scores (higher is better): 1 when it is strictly best, 1/k when it shares the
 * best score with k − 1 others, 0 otherwise. Null scores (empty replies) tie with everything at the top.
 */
export function preferenceCredit(scores: readonly (number | null)[], target: number): number {
  if (scores.some((s) => s === null)) {
    // an empty reply has no per-token value: the comparison is undecided, a tie among all options
    return 1 / scores.length;
  }
  const vals = scores as number[];
  const best = Math.max(...vals);
  if (vals[target] < best) return 0;
  return 1 / vals.filter((v) => v === best).length;
}
