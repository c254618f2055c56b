/**
 * Language health of a training run (SYSTEM.md, "Evaluation"):
 *   drift      perplexity of the states and messages in transcripts.jsonl under the base model (adapter off), per
 *              iteration: do the learners drift toward text the unchanged model cannot read (private codes)?
 *              Each text is scored on its own: [BOS] + its tokens, every token after BOS scored.
 *   honesty    per sender and iteration, the share of checkable claims in its messages that are true (facts world)
 *   listening  per recipient and iteration, the share of the messages it received that its state passes on
 *              verbatim: the reward is the gain of the recipient's own state, so a message it does not keep is lost
 *   matrices   who talks to whom and what the messages were worth, from metrics.jsonl, per block of iterations
 *   roles      role specialisation: the validation episodes with the adapters in place and with two agents'
 *              adapters swapped; if the agents specialised, swapping them costs information gain
 */
import fs from "node:fs";
import type { Backend } from "../engine/backend.ts";
import type { AgentRound, AgentSlot, EpisodeRun } from "../env/episode.ts";
import type { TextSource } from "../env/sources/source.ts";
import type { Tokenizer } from "../formats/tokenizer.ts";
import type { TrainConfig } from "../run/config.ts";
import { slotsFromConfig, validationEpisodes } from "../run/episodes.ts";
import type { MetricsLine } from "../run/metrics.ts";
import { groupBy as groupMap } from "../util/collections.ts";
import { UserError } from "../util/errors.ts";
import { mean as meanCi, rate } from "./stats.ts";
import { runPath } from "../run/names.ts";

/** A line of transcripts.jsonl: an agent-round without its generation trace, tagged with its iteration. */
export type TranscriptRecord = Omit<AgentRound, "trace"> & { iteration: number };

export const DRIFT_METHOD =
  "each state and each message is scored on its own by the base model (adapter off): [BOS] + the text's tokens, every " +
  "token after BOS scored; perplexity = exp(mean negative log-likelihood per token, pooled over the group's tokens); " +
  "empty texts are skipped; identical texts are scored once";
export const LOSS_DEFINITION = "loss = −log p(next excerpt | window, state) per token under the run's scorer (= −raw reward), nats/token";

// ---------------------------------------------------------------------------------------------------- drift

export interface TextScore {
  texts: number; // non-empty texts scored
  empty: number; // empty texts skipped
  tokens: number; // scored tokens
  truncated: number; // texts cut to the model's context
  nll_per_token: number | null; // pooled over tokens
  perplexity: number | null; // exp(nll_per_token)
  nll_per_text: number | null; // mean over texts of each text's per-token NLL
  nll_per_text_ci95: [number, number] | null; // 95% normal interval of that mean
}

export interface DriftPoint {
  iteration: number;
  groups: Record<string, { state: TextScore; message: TextScore }>; // "learners", "scripted"
}

/** The group a record belongs to: learners, or the scripted agents as a reference. */
export const driftGroup = (kind: string) => (kind === "learner" ? "learners" : "scripted");

interface Scored {
  nll: number; // summed over scored tokens
  tokens: number;
  truncated: boolean;
}

/** Scores each distinct non-empty text on its own after BOS, adapter off. */
export async function scoreTexts(
  backend: Backend,
  tok: Tokenizer,
  texts: Iterable<string>,
  onProgress?: (done: number, total: number) => void,
): Promise<Map<string, Scored>> {
  const unique = [...new Set([...texts].filter((t) => t.trim() !== ""))];
  const out = new Map<string, Scored>();
  const maxLen = backend.config.maxSeqLen;
  const CHUNK = 64;
  for (let start = 0; start < unique.length; start += CHUNK) {
    const batch = unique.slice(start, start + CHUNK).map((text) => {
      const ids = [...(tok.bosId !== null ? [tok.bosId] : []), ...tok.encode(text, { addSpecial: false })];
      return { text, tokens: ids.slice(0, maxLen), truncated: ids.length > maxLen };
    });
    const scorable = batch.filter((b) => b.tokens.length >= 2);
    const scores = await backend.score(scorable.map((b) => ({ tokens: b.tokens, adapter: null, from: 1 })));
    scorable.forEach((b, k) => {
      let nll = 0;
      for (let t = 1; t < b.tokens.length; t++) nll -= scores[k].logprobs[t];
      out.set(b.text, { nll, tokens: b.tokens.length - 1, truncated: b.truncated });
    });
    onProgress?.(Math.min(unique.length, start + CHUNK), unique.length);
  }
  return out;
}

/** Every text of a record that drift scores: its state and each message it sent. */
export function recordTexts(r: TranscriptRecord): { state: string[]; message: string[] } {
  return { state: [r.state], message: r.sent.map((m) => m.text) };
}

export function textScore(texts: readonly string[], scored: ReadonlyMap<string, Scored>): TextScore {
  let nll = 0,
    tokens = 0,
    truncated = 0,
    empty = 0;
  const perText: number[] = [];
  for (const t of texts) {
    const s = scored.get(t);
    if (!s || s.tokens === 0) {
      empty++;
      continue;
    }
    nll += s.nll;
    tokens += s.tokens;
    if (s.truncated) truncated++;
    perText.push(s.nll / s.tokens);
  }
  const m = perText.length ? meanCi(perText) : null;
  return {
    texts: perText.length,
    empty,
    tokens,
    truncated,
    nll_per_token: tokens ? nll / tokens : null,
    perplexity: tokens ? Math.exp(nll / tokens) : null,
    nll_per_text: m ? m.mean : null,
    nll_per_text_ci95: m ? [m.low, m.high] : null,
  };
}

/** Drift per iteration, for the learners and (as a reference) the scripted agents present in the run. */
export function driftSeries(records: readonly TranscriptRecord[], scored: ReadonlyMap<string, Scored>): DriftPoint[] {
  const groups = [...new Set(records.map((r) => driftGroup(r.kind)))].sort();
  return byIteration(records).map(([iteration, rs]) => ({
    iteration,
    groups: Object.fromEntries(
      groups.map((g) => {
        const mine = rs.filter((r) => driftGroup(r.kind) === g).map(recordTexts);
        return [
          g,
          {
            state: textScore(
              mine.flatMap((x) => x.state),
              scored,
            ),
            message: textScore(
              mine.flatMap((x) => x.message),
              scored,
            ),
          },
        ];
      }),
    ),
  }));
}

/** The same, pooled over every iteration of the transcripts. */
export function driftOverall(records: readonly TranscriptRecord[], scored: ReadonlyMap<string, Scored>): DriftPoint["groups"] {
  return (
    driftSeries(
      records.map((r) => ({ ...r, iteration: 0 })),
      scored,
    )[0]?.groups ?? {}
  );
}

// ---------------------------------------------------------------------------------------------------- honesty

export interface HonestyCell {
  agent: number;
  kind: string;
  messages: number;
  claims: number; // checkable claims
  true: number;
  false: number;
  share_true: number | null; // null: no checkable claim
  share_true_ci95: [number, number] | null; // 95% Wilson score
}

export interface Honesty {
  checkable: boolean;
  note: string;
  per_iteration: { iteration: number; senders: HonestyCell[] }[];
  overall: HonestyCell[];
}

/** Rounds away the floating-point dust of an interval's end (2.8e-17 → 0). */
const clean = (x: number) => Math.round(x * 1e12) / 1e12;

function honestyCells(records: readonly TranscriptRecord[], agents: readonly string[]): HonestyCell[] {
  return agents.map((kind, agent) => {
    const mine = records.filter((r) => r.agent === agent);
    const c = { claims: 0, true: 0, false: 0 };
    for (const r of mine) {
      if (!r.honesty) continue;
      c.claims += r.honesty.claims;
      c.true += r.honesty.true;
      c.false += r.honesty.false;
    }
    const w = rate(c.true, c.claims);
    return {
      agent,
      kind,
      messages: mine.reduce((s, r) => s + r.sent.length, 0),
      ...c,
      share_true: c.claims ? w.rate : null,
      share_true_ci95: c.claims ? [clean(w.low), clean(w.high)] : null,
    };
  });
}

export function honesty(records: readonly TranscriptRecord[], agents: readonly string[], source: string): Honesty {
  const sent = records.some((r) => r.sent.length > 0);
  const checked = records.some((r) => r.honesty !== null);
  const note = !sent
    ? "no messages in the transcripts"
    : !checked
      ? `not checkable: the ${source} source has no world to check claims against`
      : "share of the checkable claims in each sender's messages that are true (95% Wilson intervals); a claim is a sentence the facts world recognises";
  if (!checked) return { checkable: false, note, per_iteration: [], overall: [] };
  return {
    checkable: true,
    note,
    per_iteration: byIteration(records).map(([iteration, rs]) => ({ iteration, senders: honestyCells(rs, agents) })),
    overall: honestyCells(records, agents),
  };
}

// ---------------------------------------------------------------------------------------------------- listening

export interface ListeningCell {
  agent: number;
  kind: string;
  received: number; // messages delivered to it
  kept: number; // of which its state that round holds the text verbatim
  share_kept: number | null; // null: nothing received
  share_kept_ci95: [number, number] | null; // 95% Wilson score
}

export interface Listening {
  note: string;
  per_iteration: { iteration: number; recipients: ListeningCell[] }[];
  overall: ListeningCell[];
}

/** Whether a state passes a received message on: it holds the message's text verbatim. */
export function passesOn(state: string, message: string): boolean {
  const text = message.trim();
  return text !== "" && state.includes(text);
}

function listeningCells(records: readonly TranscriptRecord[], agents: readonly string[]): ListeningCell[] {
  return agents.map((kind, agent) => {
    let received = 0,
      kept = 0;
    for (const r of records) {
      if (r.agent !== agent) continue;
      received += r.received.length;
      kept += r.received.filter((m) => passesOn(r.state, m.text)).length;
    }
    const w = rate(kept, received);
    return {
      agent,
      kind,
      received,
      kept,
      share_kept: received ? w.rate : null,
      share_kept_ci95: received ? [clean(w.low), clean(w.high)] : null,
    };
  });
}

export function listening(records: readonly TranscriptRecord[], agents: readonly string[]): Listening {
  const note = records.some((r) => r.received.length > 0)
    ? "share of the messages each agent received that its state of the same round holds verbatim (95% Wilson intervals)"
    : "no delivered messages in the transcripts";
  return {
    note,
    per_iteration: byIteration(records).map(([iteration, rs]) => ({ iteration, recipients: listeningCells(rs, agents) })),
    overall: listeningCells(records, agents),
  };
}

// ---------------------------------------------------------------------------------------------------- matrices

export interface MatrixBlock {
  from: number; // first iteration of the block
  to: number; // last iteration
  iterations: number; // lines with matrices in the block
  talk: number[][]; // [sender][recipient] messages delivered per iteration (mean over the block)
  message_value: (number | null)[][]; // [sender][recipient] mean over the block's iterations that have a value, nats/token
}

/** Iterations per block when none is given: at most five blocks. */
export function defaultBlock(lastIteration: number): number {
  return Math.max(1, Math.ceil(lastIteration / 5));
}

/** Talk and message-value matrices of metrics.jsonl, averaged over blocks of `block` iterations (1..block, ...). */
export function blockMatrices(metrics: readonly Partial<MetricsLine>[], block: number): MatrixBlock[] {
  const lines = metrics.filter((m) => Array.isArray(m.talk) && typeof m.iteration === "number") as MetricsLine[];
  return groupBy(lines, (l) => Math.floor((l.iteration - 1) / block)).map(([b, ls]) => {
    const K = ls[0].talk!.length;
    const cell = (f: (l: MetricsLine, i: number, j: number) => number | null | undefined) =>
      Array.from({ length: K }, (_, i) =>
        Array.from({ length: K }, (_, j) => {
          const xs = ls.map((l) => f(l, i, j)).filter((x): x is number => typeof x === "number" && Number.isFinite(x));
          return xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : null;
        }),
      );
    return {
      from: b * block + 1,
      to: Math.max(...ls.map((l) => l.iteration)),
      iterations: ls.length,
      talk: cell((l, i, j) => l.talk?.[i]?.[j]).map((row) => row.map((x) => x ?? 0)),
      message_value: cell((l, i, j) => l.message_value?.[i]?.[j]),
    };
  });
}

// ---------------------------------------------------------------------------------------------------- roles

export interface Delta {
  mean: number;
  ci95: [number, number]; // 95% normal interval over paired agent-rounds (the same episode, round and agent)
  n: number;
}

export interface RoleAgent {
  agent: number;
  kind: string;
  adapter: string | null;
  gain: number; // information gain, nats/token
  loss: number; // nats/token
}

export interface RoleSwap {
  agents: [number, number];
  adapters: [string, string]; // their adapters before the swap
  learner_gain: number;
  learner_loss: number;
  delta_gain: Delta; // swapped − in place, over the learners' rounds (negative: swapping hurts)
  delta_loss: Delta; // positive: swapping hurts
  swapped_agents_delta_gain: Delta; // the same over the two swapped agents' rounds only
  swapped_agents_delta_loss: Delta;
  per_agent: (RoleAgent & { delta_gain: number; delta_loss: number })[];
}

export interface Roles {
  applicable: boolean;
  note: string;
  episodes: number;
  loss_definition: string;
  in_place: { learner_gain: number; learner_loss: number; per_agent: RoleAgent[] } | null;
  swaps: RoleSwap[];
}

/** Pairs of learner slots on distinct adapters: every pair, or the one asked for. */
export function swapPairs(slots: readonly AgentSlot[], only: [number, number] | null): [number, number][] {
  const learners = slots.map((s, i) => (s.adapter !== null ? i : -1)).filter((i) => i >= 0);
  if (only) {
    const [i, j] = only;
    for (const k of only) {
      if (!(k >= 0 && k < slots.length))
        throw new UserError("E_BAD_FLAG", `--swap ${i},${j}: agent ${k} does not exist (the run has ${slots.length} agents)`);
      if (slots[k].adapter === null)
        throw new UserError("E_BAD_FLAG", `--swap ${i},${j}: agent ${k} is ${slots[k].kind}, not a learner with an adapter`);
    }
    if (i === j || slots[i].adapter === slots[j].adapter)
      throw new UserError("E_BAD_FLAG", `--swap ${i},${j}: the two agents must have different adapters`);
    return [[i, j]];
  }
  const pairs: [number, number][] = [];
  for (let a = 0; a < learners.length; a++) {
    for (let b = a + 1; b < learners.length; b++)
      if (slots[learners[a]].adapter !== slots[learners[b]].adapter) pairs.push([learners[a], learners[b]]);
  }
  return pairs;
}

const flat = (run: EpisodeRun) => run.records.flat(2);
const avg = (xs: readonly number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN);

function perAgent(run: EpisodeRun): RoleAgent[] {
  return run.slots.map((s, agent) => {
    const rs = flat(run).filter((r) => r.agent === agent);
    return {
      agent,
      kind: s.kind,
      adapter: s.adapter,
      gain: avg(rs.map((r) => r.information_gain)),
      loss: avg(rs.map((r) => -r.raw_logprob)),
    };
  });
}

function delta(a: AgentRound[], b: AgentRound[], keep: (r: AgentRound) => boolean, f: (r: AgentRound) => number): Delta {
  const d: number[] = [];
  a.forEach((r, k) => {
    if (keep(r)) d.push(f(b[k]) - f(r));
  });
  const m = meanCi(d);
  return { mean: m.mean, ci95: [m.low, m.high], n: m.n };
}

export interface RolesOptions {
  backend: Backend; // holds the run's adapters under the names slotsFromConfig gives (agent<i> or shared)
  tokenizer: Tokenizer;
  source: TextSource;
  config: TrainConfig;
  only: [number, number] | null; // --swap i,j
  onProgress?: (done: number, total: number) => void;
}

/**
 * Role specialisation: the run's validation episodes (as the trainer evaluates them: same worlds, same sampling
 * seeds, messages delivered) with the adapters in place, then with each pair's adapters swapped. The episodes
 * draw the same seeds either way, so differences are paired per agent-round.
 */
export async function roleSpecialisation(o: RolesOptions): Promise<Roles> {
  const slots = slotsFromConfig(o.config);
  const base = { episodes: o.config.evalEpisodes, loss_definition: LOSS_DEFINITION };
  const adapters = new Set(slots.map((s) => s.adapter).filter((a) => a !== null));
  if (adapters.size < 2) {
    const why = o.config.sharedAdapter ? "the learners share one adapter" : `the run has ${adapters.size} learner adapter(s)`;
    return {
      applicable: false,
      note: `not applicable: ${why}; a swap needs two learners with their own adapters`,
      in_place: null,
      swaps: [],
      ...base,
    };
  }
  const pairs = swapPairs(slots, o.only);
  const run = (s: readonly AgentSlot[]) =>
    validationEpisodes({ backend: o.backend, tokenizer: o.tokenizer, source: o.source, config: o.config, slots: s, deliver: true });
  const total = 1 + pairs.length;
  const inPlace = await run(slots);
  o.onProgress?.(1, total);
  const a = flat(inPlace);
  const learner = (r: AgentRound) => r.adapter !== null;
  const gain = (r: AgentRound) => r.information_gain,
    loss = (r: AgentRound) => -r.raw_logprob;
  const swaps: RoleSwap[] = [];
  for (const [i, j] of pairs) {
    const swapped = slots.map((s, k) =>
      k === i ? { ...s, adapter: slots[j].adapter } : k === j ? { ...s, adapter: slots[i].adapter } : s,
    );
    const out = await run(swapped);
    o.onProgress?.(1 + swaps.length + 1, total);
    const b = flat(out);
    const before = perAgent(inPlace),
      after = perAgent(out);
    const pair = (r: AgentRound) => r.agent === i || r.agent === j;
    swaps.push({
      agents: [i, j],
      adapters: [slots[i].adapter!, slots[j].adapter!],
      learner_gain: avg(b.filter(learner).map(gain)),
      learner_loss: avg(b.filter(learner).map(loss)),
      delta_gain: delta(a, b, learner, gain),
      delta_loss: delta(a, b, learner, loss),
      swapped_agents_delta_gain: delta(a, b, pair, gain),
      swapped_agents_delta_loss: delta(a, b, pair, loss),
      per_agent: after.map((x, k) => ({ ...x, delta_gain: x.gain - before[k].gain, delta_loss: x.loss - before[k].loss })),
    });
  }
  return {
    applicable: true,
    ...base,
    note:
      "validation episodes (the trainer's: same worlds and sampling seeds, messages delivered) with the adapters in place and with each pair swapped; " +
      "deltas are swapped − in place, paired per agent-round, 95% normal intervals; a specialised pair loses gain (delta_gain < 0, delta_loss > 0) when swapped",
    in_place: {
      learner_gain: avg(a.filter(learner).map(gain)),
      learner_loss: avg(a.filter(learner).map(loss)),
      per_agent: perAgent(inPlace),
    },
    swaps,
  };
}

// ---------------------------------------------------------------------------------------------------- helpers

/** Records grouped by iteration, in order. */
export function byIteration(records: readonly TranscriptRecord[]): [number, TranscriptRecord[]][] {
  return groupBy(records, (r) => r.iteration);
}

/** The groups in ascending key order. */
function groupBy<T>(items: readonly T[], key: (x: T) => number): [number, T[]][] {
  return [...groupMap(items, key)].sort((a, b) => a[0] - b[0]);
}

/** The lines of a JSONL file of a run (a torn last line, from a run killed while writing, is skipped). */
export function readJsonl<T>(file: string): T[] {
  if (!fs.existsSync(file)) return [];
  const out: T[] = [];
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as T);
    } catch {
      // a torn line
    }
  }
  return out;
}

export function readTranscripts(runDir: string): TranscriptRecord[] {
  return readJsonl<TranscriptRecord>(runPath(runDir, "transcripts"));
}
