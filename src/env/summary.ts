/**
 * Per-agent aggregates of an episode run: what `colloquy rollout` prints and training logs.
 */
import type { EpisodeRun } from "./episode.ts";
import type { ChannelCheck } from "./sources/source.ts";

export interface RunSummary {
  agents: string[]; // kind of each slot
  information_gain: number[]; // mean nats per token, per agent
  raw_logprob: number[];
  baseline_logprob: number[];
  oracle_gain: (number | null)[];
  reward: number[];
  message_value: (number | null)[][]; // [sender][recipient] mean over delivered messages, nats per token
  messages_sent: number[]; // per round, mean
  protocol_violations: number[]; // total
  honesty: (number | null)[]; // share of checkable claims in the agent's messages that were true
  state_words: number[]; // mean words in the state
  channel: (ChannelSummary | null)[]; // per agent; null where the source has no world to check
}

/** How an agent used the facts that only messages can carry (facts world), summed over its rounds. */
export interface ChannelSummary {
  needed: number; // facts its next excerpts restated that only another agent had read
  delivered: number; // … of which an inbox message stated truly (the senders' part)
  kept: number; // … of which its state stated truly (its part as a listener)
  garbled: number; // … of which its state stated with a wrong value
  news: number; // facts it read first that another agent's later excerpt restated
  passed: number; // … of which its messages stated truly, in time
  gain_kept: number | null; // mean information gain of its rounds that kept a delivered fact
  gain_not_kept: number | null; // … of its rounds with a delivered fact, none kept
  reward_kept: number | null; // the same two for its reward: what keeping a fact is credited
  reward_not_kept: number | null;
}

export function summarize(run: EpisodeRun): RunSummary {
  const K = run.slots.length;
  const acc = () => Array.from({ length: K }, () => ({ sum: 0, n: 0 }));
  const gain = acc(),
    raw = acc(),
    base = acc(),
    oracle = acc(),
    reward = acc(),
    sent = acc(),
    words = acc();
  const violations = new Array<number>(K).fill(0);
  const claims = Array.from({ length: K }, () => ({ t: 0, n: 0 }));
  const value = Array.from({ length: K }, () => acc());
  const channel = Array.from({ length: K }, () => ({
    counts: sumChannels([]),
    gainKept: { sum: 0, n: 0 },
    gainNot: { sum: 0, n: 0 },
    rewardKept: { sum: 0, n: 0 },
    rewardNot: { sum: 0, n: 0 },
    seen: false,
  }));
  const push = (a: { sum: number; n: number }[], i: number, x: number) => {
    a[i].sum += x;
    a[i].n++;
  };
  for (const episode of run.records) {
    for (const round of episode) {
      for (const r of round) {
        push(gain, r.agent, r.information_gain);
        push(raw, r.agent, r.raw_logprob);
        push(base, r.agent, r.baseline_logprob);
        if (r.oracle_gain !== null) push(oracle, r.agent, r.oracle_gain);
        push(reward, r.agent, r.reward);
        push(sent, r.agent, r.sent.length);
        push(words, r.agent, r.state ? r.state.split(/\s+/).length : 0);
        violations[r.agent] += r.violations.length;
        if (r.honesty) {
          claims[r.agent].t += r.honesty.true;
          claims[r.agent].n += r.honesty.claims;
        }
        for (const v of r.message_values) push(value[r.agent], v.to, v.value);
        const c = r.channel;
        if (c) {
          const a = channel[r.agent];
          a.seen = true;
          a.counts = sumChannels([a.counts, c]);
          if (c.delivered) {
            const [g, w] = c.kept ? [a.gainKept, a.rewardKept] : [a.gainNot, a.rewardNot];
            g.sum += r.information_gain;
            g.n++;
            w.sum += r.reward;
            w.n++;
          }
        }
      }
    }
  }
  const m = (a: { sum: number; n: number }[]) => a.map((x) => (x.n ? x.sum / x.n : 0));
  const mNull = (a: { sum: number; n: number }[]) => a.map((x) => (x.n ? x.sum / x.n : null));
  return {
    agents: run.slots.map((s) => s.kind),
    information_gain: m(gain),
    raw_logprob: m(raw),
    baseline_logprob: m(base),
    oracle_gain: mNull(oracle),
    reward: m(reward),
    message_value: value.map(mNull),
    messages_sent: m(sent),
    protocol_violations: violations,
    honesty: claims.map((c) => (c.n ? c.t / c.n : null)),
    state_words: m(words),
    channel: channel.map((a) => {
      if (!a.seen) return null;
      const avg = (x: { sum: number; n: number }) => (x.n ? x.sum / x.n : null);
      return {
        ...a.counts,
        gain_kept: avg(a.gainKept),
        gain_not_kept: avg(a.gainNot),
        reward_kept: avg(a.rewardKept),
        reward_not_kept: avg(a.rewardNot),
      };
    }),
  };
}

/** Channel checks added up, count by count. */
export function sumChannels(checks: readonly ChannelCheck[]): ChannelCheck {
  const out: ChannelCheck = { needed: 0, delivered: 0, kept: 0, garbled: 0, news: 0, passed: 0 };
  for (const c of checks) for (const k of Object.keys(out) as (keyof ChannelCheck)[]) out[k] += c[k];
  return out;
}
