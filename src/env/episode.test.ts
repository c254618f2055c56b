/**
 * Episodes on a tiny random model: byte-for-byte determinism, rewards recomputed independently from direct
 * scoring, message values as with/without differences, social modes, routing and scripted agents.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { tinyModel, tinyTokenizer } from "../../test/tiny.ts";
import { CpuBackend } from "../engine/backend.ts";
import { scoreRows } from "../engine/score.ts";
import { Rng } from "../util/rng.ts";
import { DEFAULT_ENV, type EnvConfig } from "./config.ts";
import { type AgentSlot, runEpisodes } from "./episode.ts";
import { scorerTokens } from "./prompt.ts";
import { FactsSource } from "./sources/facts/index.ts";

const slots: AgentSlot[] = [
  { kind: "honest", adapter: null },
  { kind: "learner", adapter: null },
  { kind: "liar", adapter: null },
];

async function run(seed: number, env: Partial<EnvConfig> = {}, deliver = true) {
  const backend = new CpuBackend(tinyModel());
  return runEpisodes({
    backend,
    tokenizer: tinyTokenizer(),
    source: new FactsSource(0),
    split: "train",
    slots,
    episodes: 2,
    env: { ...DEFAULT_ENV, window: 0, stateTokens: 16, messageTokens: 24, ...env },
    rng: new Rng(seed),
    deliver,
  });
}

const strip = (r: Awaited<ReturnType<typeof run>>) => JSON.stringify(r.records);

test("same seed, same episodes byte for byte; another seed differs", async () => {
  const a = await run(7),
    b = await run(7),
    c = await run(8);
  assert.equal(strip(a), strip(b));
  assert.notEqual(strip(a), strip(c));
});

test("rewards and message values equal direct scoring of the scorer texts", async () => {
  const r = await run(3, { social: "selfish" });
  const m = tinyModel();
  const tok = tinyTokenizer();
  const ep = new FactsSource(0).episode("train", 0, 3, 3);
  const meanFrom = (xs: Float64Array, from: number) => xs.slice(from).reduce((s, x) => s + x, 0) / (xs.length - from);
  for (const round of r.records[0]) {
    for (const rec of round) {
      const next = ep.streams[rec.agent][rec.round];
      const raw = scorerTokens(tok, { context: [], state: rec.state, inbox: null, next });
      const base = scorerTokens(tok, { context: [], state: "", inbox: null, next });
      const [sr, sb] = scoreRows(m, [raw, base]);
      const gain = meanFrom(sr.logprobs, raw.from) - meanFrom(sb.logprobs, base.from);
      // the episode scores rows in other batches than this direct call: float32 kernels may round differently (≲1e-6)
      assert.ok(Math.abs(gain - rec.information_gain) < 1e-5, `gain of agent ${rec.agent} round ${rec.round}`);
      const penalty = DEFAULT_ENV.violationPenalty * rec.violations.length;
      assert.ok(
        Math.abs(rec.reward - (rec.information_gain - penalty)) < 1e-12,
        "selfish reward is the own gain, less the violation penalty",
      );
    }
  }
  // the honest agent's message to agent 1 in round 1, valued in round 2 against agent 1's inbox
  const r2 = r.records[0][1][1];
  const memory = r.records[0][0][1].state;
  const next = ep.streams[1][2];
  const full = scorerTokens(tok, { context: [], state: memory, inbox: r2.received, next });
  for (let k = 0; k < r2.received.length; k++) {
    const without = scorerTokens(tok, { context: [], state: memory, inbox: r2.received.filter((_, j) => j !== k), next });
    const [a, b] = scoreRows(m, [full, without]);
    const v = meanFrom(a.logprobs, full.from) - meanFrom(b.logprobs, without.from);
    const sender = r.records[0][0][r2.received[k].from];
    const logged = sender.message_values.filter((x) => x.to === 1 && x.text === r2.received[k].text);
    assert.ok(
      logged.some((x) => Math.abs(x.value - v) < 1e-5),
      `value of message ${k}`,
    );
  }
});

test("team, mixed and credit modes combine the signals as documented", async () => {
  const sel = await run(5, { social: "selfish" });
  const team = await run(5, { social: "team" });
  const mixed = await run(5, { social: "mixed:0.25+credit:2" });
  sel.records.flat(1).forEach((round, k) => {
    const gains = round.map((r) => r.information_gain);
    const mean = gains.reduce((a, b) => a + b, 0) / gains.length;
    round.forEach((r, i) => {
      const penalty = DEFAULT_ENV.violationPenalty * r.violations.length;
      assert.ok(Math.abs(team.records.flat(1)[k][i].reward - (mean - penalty)) < 1e-12);
      const credit = r.message_values.reduce((s, v) => s + v.value, 0);
      assert.ok(Math.abs(mixed.records.flat(1)[k][i].reward - (0.25 * gains[i] + 0.75 * mean + 2 * credit - penalty)) < 1e-12);
    });
  });
});

test("scripted agents: honest tells the truth, liar lies, both broadcast; no delivery when switched off", async () => {
  const r = await run(1);
  const first = r.records[0][0];
  assert.equal(first[0].honesty!.false, 0);
  assert.ok(first[0].honesty!.true > 0);
  assert.equal(first[2].honesty!.true, 0);
  assert.ok(first[2].sent.every((m) => m.to === "*" && m.from === 2));
  assert.deepEqual(
    r.records[0][1][1].received.map((m) => m.from).sort(),
    [...first[0].sent.map(() => 0), ...first[2].sent.map(() => 2)].sort(),
  );
  const off = await run(1, {}, false);
  for (const round of off.records[0]) for (const rec of round) assert.deepEqual(rec.received, []);
  assert.ok(off.messageValue.flat(2).every((v) => v === null));
});
