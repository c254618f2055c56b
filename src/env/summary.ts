/**
 * Per-agent aggregates of an episode run: what `colloquy rollout` prints and training logs.
 */
import type { EpisodeRun } from "./episode.ts";

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
  };
}
