import assert from "node:assert/strict";
import { test } from "node:test";
import { CpuBackend } from "../engine/backend.ts";
import type { Backend } from "../engine/backend.ts";
import { DEFAULT_TRAIN } from "../run/config.ts";
import { slotsFromConfig } from "../run/episodes.ts";
import { tinyModel, tinyTokenizer } from "../../test/tiny.ts";
import { assertClose } from "../../test/support.ts";
import {
  type TranscriptRecord,
  blockMatrices,
  defaultBlock,
  driftSeries,
  honesty,
  listening,
  roleSpecialisation,
  scoreTexts,
  swapPairs,
  textScore,
} from "./language.ts";

function rec(o: Partial<TranscriptRecord> & { iteration: number; agent: number; kind: string }): TranscriptRecord {
  return {
    episode: 0,
    world: 0,
    round: 1,
    adapter: null,
    excerpt: "",
    prompt: "",
    completion: "",
    state: "",
    sent: [],
    received: [],
    violations: [],
    raw_logprob: 0,
    baseline_logprob: 0,
    information_gain: 0,
    oracle_gain: null,
    reward: 0,
    message_reward: 0,
    channel: null,
    message_values: [],
    honesty: null,
    ...o,
  };
}

const msg = (from: number, text: string) => ({ from, to: "*" as const, text });

test("scoreTexts: each distinct text on its own after BOS, adapter off, the same numbers as a direct score", async () => {
  const tok = tinyTokenizer();
  const backend = new CpuBackend(tinyModel(3));
  const scored = await scoreTexts(backend, tok, ["Omar has a dog.", "", "Omar has a dog.", "Vera is in the kitchen."]);
  assert.deepEqual([...scored.keys()], ["Omar has a dog.", "Vera is in the kitchen."]); // empty skipped, duplicates once
  for (const [text, s] of scored) {
    const ids = [tok.bosId!, ...tok.encode(text, { addSpecial: false })];
    const [direct] = await backend.score([{ tokens: ids, adapter: null, from: 1 }]);
    let nll = 0;
    for (let t = 1; t < ids.length; t++) nll -= direct.logprobs[t];
    assert.equal(s.tokens, ids.length - 1);
    assertClose(text, [s.nll], [nll], 1e-9);
  }
});

test("textScore pools tokens for perplexity and averages texts for the interval", () => {
  const scored = new Map([
    ["a", { nll: 2, tokens: 1, truncated: false }],
    ["b", { nll: 6, tokens: 3, truncated: false }],
  ]);
  const s = textScore(["a", "b", "", "b"], scored);
  assert.equal(s.texts, 3);
  assert.equal(s.empty, 1);
  assert.equal(s.tokens, 7);
  assertClose("nll/token", [s.nll_per_token!], [14 / 7], 1e-12);
  assertClose("perplexity", [s.perplexity!], [Math.exp(2)], 1e-9);
  assertClose("nll/text", [s.nll_per_text!], [2], 1e-12);
  assert.deepEqual(textScore([""], scored).perplexity, null);
});

test("driftSeries: learners and scripted agents apart, states and messages apart, per iteration", () => {
  const scored = new Map([
    ["s1", { nll: 1, tokens: 1, truncated: false }],
    ["m1", { nll: 3, tokens: 1, truncated: false }],
    ["h", { nll: 2, tokens: 2, truncated: false }],
  ]);
  const records = [
    rec({ iteration: 1, agent: 0, kind: "learner", state: "s1", sent: [msg(0, "m1")] }),
    rec({ iteration: 1, agent: 1, kind: "honest", state: "h" }),
    rec({ iteration: 2, agent: 0, kind: "learner", state: "m1" }),
  ];
  const series = driftSeries(records, scored);
  assert.deepEqual(
    series.map((p) => p.iteration),
    [1, 2],
  );
  assert.equal(series[0].groups.learners.state.nll_per_token, 1);
  assert.equal(series[0].groups.learners.message.nll_per_token, 3);
  assert.equal(series[0].groups.scripted.state.nll_per_token, 1);
  assert.equal(series[1].groups.learners.state.nll_per_token, 3);
  assert.equal(series[1].groups.scripted.state.texts, 0);
});

test("honesty: counts per sender with Wilson intervals; not checkable without a world; nothing to check without messages", () => {
  const agents = ["learner", "liar"];
  const records = [
    rec({ iteration: 1, agent: 0, kind: "learner", sent: [msg(0, "x")], honesty: { claims: 2, true: 1, false: 1 } }),
    rec({ iteration: 1, agent: 1, kind: "liar", sent: [msg(1, "y")], honesty: { claims: 3, true: 0, false: 3 } }),
    rec({ iteration: 2, agent: 0, kind: "learner", sent: [msg(0, "z")], honesty: { claims: 0, true: 0, false: 0 } }),
  ];
  const h = honesty(records, agents, "facts");
  assert.equal(h.checkable, true);
  assert.equal(h.overall[0].share_true, 0.5);
  assert.equal(h.overall[1].share_true, 0);
  assert.equal(h.overall[1].share_true_ci95![0], 0);
  assert.ok(h.overall[1].share_true_ci95![1] > 0 && h.overall[1].share_true_ci95![1] < 1);
  assert.equal(h.per_iteration[1].senders[0].share_true, null); // messages, but no checkable claim
  assert.equal(h.per_iteration[1].senders[0].messages, 1);
  const prose = honesty(
    records.map((r) => ({ ...r, honesty: null })),
    agents,
    "split",
  );
  assert.equal(prose.checkable, false);
  assert.match(prose.note, /not checkable: the split source/);
  assert.match(honesty([rec({ iteration: 1, agent: 0, kind: "learner" })], agents, "facts").note, /no messages/);
});

test("listening: the share of received messages a recipient's state holds verbatim, per recipient and iteration", () => {
  const agents = ["learner", "learner"];
  const got = (from: number, text: string) => ({ from, text });
  const records = [
    rec({
      iteration: 1,
      agent: 0,
      kind: "learner",
      state: "Ben is in the east park. Ana likes pale red.",
      received: [got(1, "Ana likes pale red."), got(1, "Next: Ana's pet.")],
    }),
    rec({ iteration: 1, agent: 1, kind: "learner", state: "Ana likes pale red." }),
    rec({ iteration: 2, agent: 0, kind: "learner", state: "Ana likes pale", received: [got(1, " Ana likes pale red. ")] }),
  ];
  const l = listening(records, agents);
  assert.deepEqual(
    l.overall.map((c) => [c.received, c.kept]),
    [
      [3, 1],
      [0, 0],
    ],
  );
  assert.ok(Math.abs(l.overall[0].share_kept! - 1 / 3) < 1e-12);
  assert.ok(l.overall[0].share_kept_ci95![0] > 0 && l.overall[0].share_kept_ci95![1] < 1);
  assert.equal(l.overall[1].share_kept, null); // nothing received: nothing to keep
  assert.deepEqual(
    l.per_iteration.map((p) => [p.iteration, p.recipients[0].kept, p.recipients[0].received]),
    [
      [1, 1, 2],
      [2, 0, 1],
    ],
  );
  assert.match(listening([rec({ iteration: 1, agent: 0, kind: "learner" })], agents).note, /no delivered messages/);
});

test("blockMatrices: talk and message value averaged per block; nulls skipped", () => {
  const line = (iteration: number, t: number, v: number | null) => ({
    iteration,
    talk: [
      [0, t],
      [1, 0],
    ],
    message_value: [
      [null, v],
      [0.5, null],
    ],
  });
  const blocks = blockMatrices([{ iteration: 0, talk: null }, line(1, 2, 0.1), line(2, 4, null), line(3, 6, 0.3)], 2);
  assert.deepEqual(
    blocks.map((b) => [b.from, b.to, b.iterations]),
    [
      [1, 2, 2],
      [3, 3, 1],
    ],
  );
  assert.deepEqual(blocks[0].talk, [
    [0, 3],
    [1, 0],
  ]);
  assert.equal(blocks[0].message_value[0][1], 0.1);
  assert.equal(blocks[0].message_value[0][0], null);
  assert.equal(blocks[1].message_value[0][1], 0.3);
  assert.equal(defaultBlock(3), 1);
  assert.equal(defaultBlock(60), 12);
});

test("swapPairs: every pair of learners with their own adapters, or the one asked for", () => {
  const slots = slotsFromConfig({ ...DEFAULT_TRAIN, agents: ["learner", "liar", "learner", "learner"] });
  assert.deepEqual(swapPairs(slots, null), [
    [0, 2],
    [0, 3],
    [2, 3],
  ]);
  assert.deepEqual(swapPairs(slots, [3, 0]), [[3, 0]]);
  assert.throws(() => swapPairs(slots, [0, 1]), /agent 1 is liar/);
  assert.throws(() => swapPairs(slots, [0, 9]), /does not exist/);
  assert.throws(() => swapPairs(slots, [2, 2]), /different adapters/);
  const shared = slotsFromConfig({ ...DEFAULT_TRAIN, sharedAdapter: true });
  assert.deepEqual(swapPairs(shared, null), []);
});

test("roleSpecialisation: not applicable when the learners share one adapter (no episodes run)", async () => {
  const config = { ...DEFAULT_TRAIN, sharedAdapter: true };
  const r = await roleSpecialisation({
    backend: null as unknown as Backend,
    tokenizer: tinyTokenizer(),
    source: null as never,
    config,
    only: null,
  });
  assert.equal(r.applicable, false);
  assert.match(r.note, /share one adapter/);
});
