/**
 * The channel between agents, measured on held-out episodes: who passes on whose messages, what each sender's
 * messages are worth to each recipient, how honest they are, how much they send, what delivery is worth, and
 * (facts world) where the facts that only a message can carry get lost — not sent, not kept, or kept with a wrong value.
 * Pure functions of episode records; `colloquy eval channel` runs the episodes.
 */
import type { AgentRound } from "../env/episode.ts";
import { sumChannels } from "../env/summary.ts";
import { passesOn } from "./language.ts";
import { type Mean, type Rate, mean, rate } from "./stats.ts";

type Episode = readonly (readonly AgentRound[])[]; // [round − 1][agent]

export interface ChannelReport {
  agents: string[];
  /** [recipient][sender]: share of the sender's messages that the recipient's state of the next round holds verbatim */
  listening: (Rate | null)[][];
  /** [sender][recipient]: messages delivered per episode */
  talk: (Mean | null)[][];
  /** [sender][recipient]: mean value of delivered messages, nats/token of the recipient's next excerpt */
  message_value: (Mean | null)[][];
  honesty: (Rate | null)[]; // per sender: share of checkable claims that are true
  messages_per_round: Mean[][]; // [agent][round − 1]
  /** facts world, per agent: needed facts delivered, delivered facts kept, news passed on (null: no world) */
  facts: ({ delivered: Rate; kept: Rate; garbled: Rate; passed: Rate } | null)[];
  information_gain: Mean[]; // per agent, with delivery
}

const cell = <T>(K: number, f: (i: number, j: number) => T | null) =>
  Array.from({ length: K }, (_, i) => Array.from({ length: K }, (_, j) => (i === j ? null : f(i, j))));

/** The channel report of one run of episodes (with delivery on). */
export function channelReport(agents: readonly string[], episodes: readonly Episode[]): ChannelReport {
  const K = agents.length;
  const records = episodes.flatMap((e) => e.flat());
  const heard = cell(K, () => ({ kept: 0, n: 0 }));
  const values = cell(K, () => [] as number[]);
  for (const r of records) {
    for (const m of r.received) {
      const c = heard[r.agent][m.from]!;
      c.n++;
      if (passesOn(r.state, m.text)) c.kept++;
    }
    for (const v of r.message_values) values[r.agent][v.to]!.push(v.value);
  }
  const T = Math.max(0, ...episodes.map((e) => e.length));
  const of = (i: number) => records.filter((r) => r.agent === i);
  return {
    agents: [...agents],
    listening: heard.map((row) => row.map((c) => (c?.n ? rate(c.kept, c.n) : null))),
    talk: cell(K, (i, j) =>
      mean(
        episodes.map((e) =>
          e
            .flat()
            .filter((r) => r.agent === j)
            .reduce((a, r) => a + r.received.filter((m) => m.from === i).length, 0),
        ),
      ),
    ),
    message_value: values.map((row) => row.map((xs) => (xs?.length ? mean(xs) : null))),
    honesty: agents.map((_, i) => {
      const checks = of(i).flatMap((r) => (r.honesty ? [r.honesty] : []));
      const n = checks.reduce((a, c) => a + c.claims, 0);
      return n
        ? rate(
            checks.reduce((a, c) => a + c.true, 0),
            n,
          )
        : null;
    }),
    messages_per_round: agents.map((_, i) =>
      Array.from({ length: T }, (_, t) =>
        mean(
          of(i)
            .filter((r) => r.round === t + 1)
            .map((r) => r.sent.length),
        ),
      ),
    ),
    facts: agents.map((_, i) => {
      const cs = of(i).flatMap((r) => (r.channel ? [r.channel] : []));
      if (!cs.length) return null;
      const sum = sumChannels(cs);
      return {
        delivered: rate(sum.delivered, sum.needed),
        kept: rate(sum.kept, sum.delivered),
        garbled: rate(sum.garbled, sum.delivered),
        passed: rate(sum.passed, sum.news),
      };
    }),
    information_gain: agents.map((_, i) => mean(of(i).map((r) => r.information_gain))),
  };
}

/** Episodes with delivery and without, on the same worlds and sampling seeds. */
export interface PairedEpisodes {
  on: readonly Episode[];
  off: readonly Episode[];
}

export interface ChannelCondition {
  condition: "before" | "after";
  delivery: Delivery;
  report: ChannelReport;
}

/** The report before training (adapters off, or still at their initialisation) and after, each with delivery on and off. */
export function channelConditions(agents: readonly string[], before: PairedEpisodes, after: PairedEpisodes): ChannelCondition[] {
  return (["before", "after"] as const).map((condition) => {
    const { on, off } = condition === "before" ? before : after;
    return { condition, delivery: delivery(on, off), report: channelReport(agents, on) };
  });
}

export interface Delivery {
  effect: Mean; // per episode: the learners' mean information gain with delivery minus without (paired)
  with: Mean; // the learners' gain per episode, with delivery
  without: Mean; // and without
  oracle: Mean | null; // the gain of the oracle state (sources that know it), per episode
}

/**
 * What delivery is worth to the learners, from two runs on the same worlds with the same sampling seeds, one with
 * delivery and one without: per episode, their mean information gain in each, and the paired difference.
 */
export function delivery(on: readonly Episode[], off: readonly Episode[]): Delivery {
  const learners = (e: Episode) => e.flat().filter((r) => r.kind === "learner");
  const gain = (e: Episode) => {
    const xs = learners(e);
    return xs.reduce((a, r) => a + r.information_gain, 0) / Math.max(1, xs.length);
  };
  const oracles = on.flatMap((e) => {
    const xs = learners(e).flatMap((r) => (r.oracle_gain === null ? [] : [r.oracle_gain]));
    return xs.length ? [xs.reduce((a, x) => a + x, 0) / xs.length] : [];
  });
  return {
    effect: mean(on.map((e, b) => gain(e) - gain(off[b]))),
    with: mean(on.map(gain)),
    without: mean(off.map(gain)),
    oracle: oracles.length ? mean(oracles) : null,
  };
}
