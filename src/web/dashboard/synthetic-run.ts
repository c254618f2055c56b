/**
 * A synthetic run folder for tests and measurements of the dashboard: config.json, a metrics.jsonl with every
 * field of a real metrics line, and transcripts.jsonl, of any length (a real run of thousands of iterations takes
 * hours on a CPU).
 */
import fs from "node:fs";
import { agentAdapterName, runPath } from "../../run/names.ts";

/**
 * Writes a run of `iterations` iterations with every field of a real metrics line (K agents) and
 * `perIteration` transcript records per iteration, written in one go. Values follow smooth curves with noise.
 */
export function syntheticRun(dir: string, o: { iterations: number; agents?: number; perIteration?: number; preset?: string }): void {
  const K = o.agents ?? 3,
    per = o.perIteration ?? 2;
  fs.mkdirSync(dir, { recursive: true });
  const agents = Array.from({ length: K }, (_, i) => (i === K - 1 && K > 2 ? "liar" : "learner"));
  fs.writeFileSync(
    runPath(dir, "config"),
    JSON.stringify({
      config: { agents, rounds: 2, iterations: o.iterations, transcriptEpisodes: 1, seed: 0 },
      preset: o.preset ?? "synthetic",
      created: new Date().toISOString(),
    }),
  );
  let seed = 12345;
  const noise = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5;
  const metrics: string[] = [],
    transcripts: string[] = [];
  for (let it = 0; it <= o.iterations; it++) {
    const t = it / Math.max(1, o.iterations);
    const gain = Array.from({ length: K }, (_, i) => (0.2 * t * (i + 1)) / K + 0.03 * noise());
    const talk = Array.from({ length: K }, (_, s) =>
      Array.from({ length: K }, (_, r) => (s === r ? 0 : Math.round(4 * t * (1 + s) + 2 * Math.abs(noise())))),
    );
    const value = talk.map((row, s) =>
      row.map((n, r) => (s === r || n === 0 ? null : (s === K - 1 && K > 2 ? -0.05 : 0.05) * t + 0.01 * noise())),
    );
    metrics.push(
      JSON.stringify({
        iteration: it,
        reward: it ? gain[0] + 0.01 * noise() : null,
        information_gain: gain,
        learner_gain: it ? gain[0] : null,
        oracle_gain: it ? 0.3 : null,
        kl: it ? 0.02 * t + 0.002 * noise() : null,
        kl_coef: 0.02,
        entropy: it ? 5 - 2 * t + 0.05 * noise() : null,
        grad_norm: it ? 0.1 + 0.02 * noise() : null,
        state_tokens: it ? 30 + 10 * t : null,
        messages: it ? 1 + t : null,
        violations: it ? agents.map(() => Math.round(3 * (1 - t))) : null,
        honesty: it ? agents.map((k) => (k === "liar" ? 0.1 : 0.9)) : null,
        talk: it ? talk : null,
        message_value: it ? value : null,
        clip_fraction: null,
        value_loss: null,
        tokens_per_s: it ? 2000 + 100 * noise() : null,
        time_generate: it ? 0.4 : null,
        time_score: it ? 0.1 : null,
        time_train: it ? 0.3 : null,
        val_information_gain: it % 50 === 0 ? 0.15 * t : null,
        val_information_gain_no_messages: null,
        val_oracle_gain: it % 50 === 0 ? 0.3 : null,
      }),
    );
    if (it === 0) continue;
    for (let k = 0; k < per; k++) {
      const agent = k % K,
        round = 1 + (Math.floor(k / K) % 2);
      transcripts.push(
        JSON.stringify({
          iteration: it,
          episode: 0,
          world: it,
          round,
          agent,
          kind: agents[agent],
          adapter: agents[agent] === "learner" ? agentAdapterName(agent) : null,
          excerpt: `Excerpt of agent ${agent} at iteration ${it}. Ana has ${it % 7} coins.`,
          prompt: `You are agent ${agent}.\nSTATE:`,
          completion: ` Ana has ${it % 7} coins.\n${agent}:${(agent + 1) % K}:Ana has ${it % 7} coins`,
          state: `Ana has ${it % 7} coins.`,
          sent: [{ from: agent, to: (agent + 1) % K, text: `Ana has ${it % 7} coins` }],
          received: [],
          violations: [],
          raw_logprob: -3,
          baseline_logprob: -3.1,
          information_gain: 0.1,
          oracle_gain: 0.3,
          reward: 0.1,
          message_values: [{ to: (agent + 1) % K, text: `Ana has ${it % 7} coins`, value: 0.02 }],
          honesty: null,
        }),
      );
    }
  }
  fs.writeFileSync(runPath(dir, "metrics"), metrics.join("\n") + "\n");
  fs.writeFileSync(runPath(dir, "transcripts"), transcripts.join("\n") + "\n");
}
