/**
 * Running episodes: K agents, T rounds, B episodes in parallel. Each round is one batched generation for every
 * learner of every episode (each row on its agent's adapter), the scripted agents' moves, strict parsing, one
 * batched scoring pass (rewards, oracle bound, message values), then routing to next round's inboxes.
 *
 * Rewards (per token of the next excerpt, averaged): raw = log p(c_{t+1} | window, s_t), baseline = the same
 * with an empty state, information gain = raw − baseline. A message m delivered to i in round t has value
 * log p(c_{t+1}^i | window, s_{t−1}^i, inbox) − log p(c_{t+1}^i | window, s_{t−1}^i, inbox without m), credited to
 * its sender's round t−1. The social mode mixes each agent's signal with the team mean and the credit; each
 * protocol violation costs `violationPenalty`.
 */
import type { Backend, ScoreRequest } from "../engine/backend.ts";
import type { FinishReason } from "../engine/generate.ts";
import { type Tokenizer, decodeContinuation } from "../formats/tokenizer.ts";
import { UserError } from "../util/errors.ts";
import type { Rng } from "../util/rng.ts";
import { mean } from "../util/stats.ts";
import { SCRIPTED } from "./agents.ts";
import { type EnvConfig, socialModes } from "./config.ts";
import { type InboxEntry, agentPromptFormat, renderCompletion, scorerTokens, systemPrompt } from "./prompt.ts";
import { type OutgoingMessage, type TokenCounter, type ViolationKind, parseCompletion, route } from "./protocol.ts";
import type { ChannelCheck, ClaimCheck, EpisodeText, Split, TextSource } from "./sources/source.ts";

export interface AgentSlot {
  kind: string; // "learner" or a scripted kind
  adapter: string | null; // a learner's adapter (null: the base model)
}

export interface GenerationTrace {
  promptIds: number[];
  completionIds: number[];
  logprobs: number[]; // sampling log-probs of completionIds under the policy (temperature 1)
  finishReason: FinishReason;
  messageStart: number; // index in completionIds of the token that ends the state line, where the messages start (the length when it has none)
}

export interface AgentRound {
  episode: number; // position in the batch
  world: number; // episode index within its split (replicas of one world share it)
  round: number; // 1-based
  agent: number;
  kind: string;
  adapter: string | null;
  excerpt: string; // c_t, the excerpt read this round
  prompt: string;
  completion: string;
  state: string;
  sent: OutgoingMessage[];
  received: InboxEntry[];
  violations: ViolationKind[];
  raw_logprob: number; // mean log p per token of the next excerpt, with the state
  baseline_logprob: number; // the same with an empty state
  information_gain: number;
  oracle_gain: number | null; // gain of the oracle state (sources that know it)
  reward: number;
  message_reward: number; // the part of the reward this round's messages can change: credit − violation penalty
  message_values: { to: number; text: string; value: number }[]; // of this round's messages, measured on delivery
  honesty: ClaimCheck | null; // claims in this round's messages checked against the world
  channel: ChannelCheck | null; // the facts only messages can carry: needed, delivered, kept; read and passed on
  trace: GenerationTrace | null; // learners: what RL trains on
}

export interface EpisodeRunOptions {
  backend: Backend;
  tokenizer: Tokenizer;
  source: TextSource;
  split: Split;
  slots: readonly AgentSlot[];
  episodes: number; // B
  firstEpisode?: number; // episode index of the first one in its split
  worlds?: readonly number[]; // or: the split's episode index of every episode (repeats make replicas)
  env: EnvConfig;
  rng: Rng; // the caller's; sampling seeds and scripted choices are drawn from it
  deliver?: boolean; // message delivery (default on); off measures what communication is worth
  oracle?: boolean; // also score the oracle state where the source knows it (default on)
}

export interface EpisodeRun {
  slots: readonly AgentSlot[];
  records: AgentRound[][][]; // [episode][round − 1][agent]
  messageValue: (number | null)[][][]; // [round − 1][sender][recipient]: mean value of delivered messages
  seconds: { generate: number; score: number };
  generatedTokens: number;
}

export function tokenCounter(tok: Tokenizer): TokenCounter {
  return {
    count: (text) => tok.encode(text, { addSpecial: false }).length,
    truncate: (text, n) => tok.decode(tok.encode(text, { addSpecial: false }).slice(0, n)),
  };
}

export async function runEpisodes(o: EpisodeRunOptions): Promise<EpisodeRun> {
  const { backend, tokenizer: tok, env, slots } = o;
  const K = slots.length,
    B = o.episodes,
    T = env.rounds;
  if (K < 2) throw new UserError("E_BAD_CONFIG", `an episode needs at least 2 agents, got ${K}`);
  for (const s of slots)
    if (s.kind !== "learner" && !SCRIPTED[s.kind]) throw new UserError("E_BAD_CONFIG", `unknown agent kind "${s.kind}"`);
  const social = socialModes(env.social, K);
  const counter = tokenCounter(tok);
  const limits = { stateTokens: env.stateTokens, messageTokens: env.messageTokens, messagesPerRound: env.messagesPerRound };
  const deliver = o.deliver ?? true;
  const first = o.firstEpisode ?? 0;
  const worlds = o.worlds ?? Array.from({ length: B }, (_, b) => first + b);
  if (worlds.length !== B) throw new Error(`${worlds.length} worlds for ${B} episodes`);
  const texts: EpisodeText[] = worlds.map((w) => o.source.episode(o.split, w, K, T));
  const systems = slots.map((_, i) => systemPrompt(env.systemPrompt, i, K));
  const format = agentPromptFormat(env.promptFormat, tok);
  // a chat model ends its turn with the tokenizer's EOS (<|eot_id|>, <|im_end|>), which config.json may not list
  const stopTokens = format.kind === "chat" && tok.eosId !== null ? [...new Set([...backend.config.eosIds, tok.eosId])] : undefined;
  const streamIds =
    env.window > 0 ? texts.map((ep) => ep.streams.map((s) => s.map((c) => tok.encode(` ${c}`, { addSpecial: false })))) : null;
  const contextIds = (b: number, i: number, xi: number) =>
    streamIds
      ? streamIds[b][i]
          .slice(0, xi + 1)
          .flat()
          .slice(-env.window)
      : [];
  const scorerAdapter = (i: number) => (env.scorer === "self" ? slots[i].adapter : null);
  const maxTokens = env.stateTokens + env.messagesPerRound * (env.messageTokens + 8) + 8;

  const records: AgentRound[][][] = Array.from({ length: B }, () => []);
  const messageValue: (number | null)[][][] = [];
  let memory: string[][] = texts.map(() => slots.map(() => ""));
  let inboxes: InboxEntry[][][] = texts.map(() => slots.map(() => []));
  const seconds = { generate: 0, score: 0 };
  let generatedTokens = 0;

  for (let t = 1; t <= T; t++) {
    const xi = t - 1;
    // 1. act: one batched generation for every learner, scripted moves for the rest
    const prompts = texts.map((ep, b) => slots.map((_, i) => format.text(systems[i], memory[b][i], ep.streams[i][xi], inboxes[b][i])));
    const learnerRows: { b: number; i: number; promptIds: number[] }[] = [];
    texts.forEach((_, b) =>
      slots.forEach((s, i) => {
        if (s.kind === "learner") learnerRows.push({ b, i, promptIds: format.encode(prompts[b][i]) });
      }),
    );
    const seeds = learnerRows.map(() => o.rng.u32());
    const lineEnd = learnerRows.map(() => -1); // per row: the completion token whose text holds the state line's end
    const t0 = performance.now();
    const generated = await backend.sample(
      learnerRows.map((r) => ({
        prompt: r.promptIds,
        adapter: slots[r.i].adapter,
        maxTokens,
        sampling: { temperature: env.temperature, topK: env.topK, topP: env.topP },
        stopStrings: ["\n\n"],
        stopTokens,
      })),
      seeds,
      (ids, row) => {
        const text = decodeContinuation(tok, learnerRows[row].promptIds, ids);
        if (lineEnd[row] < 0 && /[\r\n]/.test(text)) lineEnd[row] = ids.length - 1; // the token that ends the state line
        return text;
      },
    );
    seconds.generate += (performance.now() - t0) / 1000;
    const completions: string[][] = texts.map(() => slots.map(() => ""));
    const traces: (GenerationTrace | null)[][] = texts.map(() => slots.map(() => null));
    learnerRows.forEach((r, k) => {
      const g = generated[k];
      generatedTokens += g.ids.length;
      completions[r.b][r.i] = g.text ?? "";
      const messageStart = lineEnd[k] < 0 ? g.ids.length : lineEnd[k];
      traces[r.b][r.i] = { promptIds: r.promptIds, completionIds: g.ids, logprobs: g.logprobs, finishReason: g.finishReason, messageStart };
    });
    texts.forEach((ep, b) =>
      slots.forEach((s, i) => {
        if (s.kind === "learner") return;
        const a = SCRIPTED[s.kind]({
          agent: i,
          agents: K,
          excerptIndex: xi,
          episode: ep,
          inbox: inboxes[b][i],
          rng: o.rng.fork(`${b}/${t}/${i}`),
        });
        completions[b][i] = renderCompletion(
          a.state,
          a.messages.map((m) => ({ from: i, ...m })),
        );
      }),
    );
    const parsed = completions.map((row) => row.map((c, i) => parseCompletion(c, i, K, limits, counter)));

    // 2. one scoring pass: raw, baseline, oracle, and message values of what was delivered this round
    const rows: ScoreRequest[] = [];
    const add = (input: Parameters<typeof scorerTokens>[1], adapter: string | null) => {
      const { tokens, from } = scorerTokens(tok, input);
      rows.push({ tokens, adapter, from });
      return rows.length - 1;
    };
    const idx = texts.map((ep, b) =>
      slots.map((_, i) => {
        const next = ep.streams[i][t];
        const context = contextIds(b, i, xi);
        const adapter = scorerAdapter(i);
        const oracleText = o.oracle !== false ? ep.oracle[i][t] : null;
        const inbox = inboxes[b][i];
        return {
          raw: add({ context, state: parsed[b][i].state, inbox: null, next }, adapter),
          base: add({ context, state: "", inbox: null, next }, adapter),
          oracle: oracleText === null ? -1 : add({ context, state: oracleText, inbox: null, next }, adapter),
          withInbox: inbox.length ? add({ context, state: memory[b][i], inbox, next }, adapter) : -1,
          without: inbox.map((_, m) => add({ context, state: memory[b][i], inbox: inbox.filter((_, k) => k !== m), next }, adapter)),
        };
      }),
    );
    const t1 = performance.now();
    const scores = await backend.score(rows);
    seconds.score += (performance.now() - t1) / 1000;
    const lp = (k: number) => mean(scores[k].logprobs, rows[k].from ?? 1);

    // 3. records; message values of this round's deliveries go to their senders' previous round
    const matrix: { sum: number; n: number }[][] = slots.map(() => slots.map(() => ({ sum: 0, n: 0 })));
    texts.forEach((ep, b) => {
      const roundRecords = slots.map((s, i): AgentRound => {
        const k = idx[b][i];
        const raw = lp(k.raw),
          base = lp(k.base);
        const sent = parsed[b][i].messages;
        const honesty = sent.length ? sumChecks(sent.map((m) => o.source.checkClaims(ep, m.text))) : null;
        return {
          episode: b,
          world: worlds[b],
          round: t,
          agent: i,
          kind: s.kind,
          adapter: s.adapter,
          excerpt: ep.streams[i][xi],
          prompt: prompts[b][i],
          completion: completions[b][i],
          state: parsed[b][i].state,
          sent,
          received: inboxes[b][i],
          violations: parsed[b][i].violations,
          raw_logprob: raw,
          baseline_logprob: base,
          information_gain: raw - base,
          oracle_gain: k.oracle >= 0 ? lp(k.oracle) - base : null,
          reward: 0,
          message_reward: 0,
          message_values: [],
          honesty,
          channel: o.source.checkChannel(
            ep,
            i,
            t,
            inboxes[b][i].map((m) => m.text),
            parsed[b][i].state,
            sent.map((m) => m.text),
          ),
          trace: traces[b][i],
        };
      });
      slots.forEach((_, i) => {
        const k = idx[b][i];
        inboxes[b][i].forEach((m, mi) => {
          const value = lp(k.withInbox) - lp(k.without[mi]);
          matrix[m.from][i].sum += value;
          matrix[m.from][i].n++;
          records[b][t - 2][m.from].message_values.push({ to: i, text: m.text, value });
        });
      });
      records[b].push(roundRecords);
    });
    if (t > 1) messageValue.push(matrix.map((row) => row.map((c) => (c.n ? c.sum / c.n : null))));

    // 4. deliver to next round
    memory = parsed.map((row) => row.map((p) => p.state));
    inboxes = parsed.map((row) =>
      deliver
        ? route(
            row.flatMap((p) => p.messages),
            K,
          )
        : slots.map(() => []),
    );
  }
  messageValue.push(slots.map(() => slots.map(() => null))); // the last round's messages are never delivered

  // 5. rewards: own signal, team mean, credit for the value of the agent's messages
  for (const perRound of records) {
    for (const roundRecords of perRound) {
      const signal = roundRecords.map((r) => (env.reward === "gain" ? r.information_gain : r.raw_logprob));
      const team = mean(signal);
      roundRecords.forEach((r, i) => {
        const credit = r.message_values.reduce((s, v) => s + v.value, 0);
        r.message_reward = social[i].credit * credit - env.violationPenalty * r.violations.length;
        r.reward = social[i].own * signal[i] + social[i].team * team + r.message_reward;
      });
    }
  }
  return { slots, records, messageValue, seconds, generatedTokens };
}

function sumChecks(checks: (ClaimCheck | null)[]): ClaimCheck | null {
  const real = checks.filter((c): c is ClaimCheck => c !== null);
  if (!real.length) return null;
  return real.reduce((a, c) => ({ claims: a.claims + c.claims, true: a.true + c.true, false: a.false + c.false }), {
    claims: 0,
    true: 0,
    false: 0,
  });
}
