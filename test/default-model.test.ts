/**
 * The embedded default base model (built on first use and cached; a few minutes on 2 cores the first time) and
 * the environment's must-show on it: in the facts world with --agents honest,learner,liar, the honest agent's
 * messages to the learner have clearly positive value, a good part of the oracle bound, and the liar's negative.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { ensureDefaultModel } from "../src/pretrain/default-model.ts";
import { mean } from "../src/eval/stats.ts";
import { runCli } from "./support.ts";

const dir = ensureDefaultModel();

test("the default model is a Hugging Face checkpoint with a tokenizer, pretrained to a low validation perplexity", () => {
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "pretrain.json", "train_log.jsonl"]) {
    assert.ok(fs.existsSync(path.join(dir, f)), f);
  }
  const info = JSON.parse(fs.readFileSync(path.join(dir, "pretrain.json"), "utf8"));
  assert.ok(info.val_perplexity < VAL_PPL_MAX, `validation perplexity ${info.val_perplexity}`);
  const log = fs
    .readFileSync(path.join(dir, "train_log.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .filter((l) => l.val_loss !== undefined);
  // measured: 1.50 at step 200 (the first evaluation) to 0.96 at step 4,000 (cache key default-v2-017c22f7)
  assert.ok(log[log.length - 1].val_loss < log[0].val_loss - 0.3, "validation loss fell during pretraining");
});

test("facts world, honest / learner / liar: message values have the right signs and sizes", () => {
  const r = runCli(["rollout", "--model", dir, "--agents", "honest,learner,liar", "--episodes", String(EPISODES), "--json"], {
    timeoutMs: 600_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  const values = (from: number, to: number) =>
    out.transcripts
      .filter((t: { agent: number }) => t.agent === from)
      .flatMap((t: { message_values: { to: number; value: number }[] }) => t.message_values.filter((v) => v.to === to).map((v) => v.value));
  const stats = (xs: number[]) => {
    const m = mean(xs);
    return { mean: m.mean, se: m.sd / Math.sqrt(m.n), n: m.n };
  };
  const honest = stats(values(0, 1)),
    liar = stats(values(2, 1));
  const oracle = out.oracle_gain[1];
  console.log(
    `honest→learner ${honest.mean.toFixed(4)} ± ${honest.se.toFixed(4)} (n ${honest.n}); liar→learner ${liar.mean.toFixed(4)} ± ${liar.se.toFixed(4)} (n ${liar.n}); learner oracle ${oracle.toFixed(4)}`,
  );
  assert.ok(
    Math.abs(honest.mean - out.message_value[0][1]) < 1e-9 && Math.abs(liar.mean - out.message_value[2][1]) < 1e-9,
    "the matrix is the mean of the logged values",
  );
  // measured (seed 0, 48 episodes, 144 messages each; cache key default-v2-017c22f7): honest→learner
  // +0.042 ± 0.004, 25% of the oracle 0.163; liar→learner −0.030 ± 0.003. The run is deterministic, so the bounds
  // are not about sampling noise: each is several standard errors from the measured mean, so that a change that
  // keeps the effect keeps the test green
  assert.ok(honest.mean - 3 * honest.se > 0, "honest messages help the learner");
  assert.ok(honest.mean > HONEST_ORACLE_SHARE * oracle, `honest value ${honest.mean} is a good part of the oracle ${oracle}`);
  assert.ok(liar.mean + 3 * liar.se < 0, "the liar's messages hurt the learner");

  // claims true by round: each agent's rounds sum to its messages' checks, the honest agent's are all true, the liar's none
  const byRound: { round: number; claims: number; true: number }[][] = out.honesty_by_round;
  assert.equal(byRound.length, 3);
  for (let i = 0; i < 3; i++) {
    const mine = out.transcripts.filter((t: { agent: number; honesty: unknown }) => t.agent === i && t.honesty);
    const sum = (f: (h: { claims: number; true: number }) => number) =>
      mine.reduce((a: number, t: { honesty: { claims: number; true: number } }) => a + f(t.honesty), 0);
    assert.deepEqual(
      byRound[i].map((h) => h.round),
      byRound[i].map((_, k) => k + 1),
    );
    assert.equal(
      byRound[i].reduce((a, h) => a + h.claims, 0),
      sum((h) => h.claims),
      `agent ${i}'s claims`,
    );
    assert.equal(
      byRound[i].reduce((a, h) => a + h.true, 0),
      sum((h) => h.true),
      `agent ${i}'s true claims`,
    );
  }
  assert.ok(
    byRound[0].every((h) => h.claims > 0 && h.true === h.claims),
    "the honest agent's claims are true in every round",
  );
  assert.ok(
    byRound[2].every((h) => h.claims > 0 && h.true === 0),
    "the liar's claims are false in every round",
  );
});

const EPISODES = 48;
const VAL_PPL_MAX = 4;
const HONEST_ORACLE_SHARE = 0.15;
