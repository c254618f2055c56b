/**
 * `colloquy eval channel` on smoke runs of the tiny model with two learners, an honest agent and a liar: before and
 * after training on the same held-out worlds and sampling seeds (a run whose adapters did not move gives the same
 * report twice; on the run's validation episodes, the delivery effects of its summary.json), honesty that tells the honest agent from the liar, listening per sender, message values, the facts
 * only messages can carry, and a delivery effect that is the paired difference of two runs.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { assertUserError, runCli, tmpDir } from "./support.ts";
import { saveTinyModel } from "./tiny.ts";

const dir = tmpDir("colloquy-eval-channel-");
const model = saveTinyModel(path.join(dir, "tiny"));
const train = (out: string, extra: string[]) =>
  runCli(["train", "--preset", "smoke", `--model=${model}`, "--agents=learner,learner,honest,liar", "--out", out, "--quiet", ...extra]);
const channel = (run: string) => runCli(["eval", "channel", "--run", run, "--episodes", "6", "--quiet", "--json"]);

test("eval channel: before and after, per sender and per pair, with intervals; saved in the run", () => {
  const run = path.join(dir, "trained");
  assert.equal(train(run, ["--lr=0.05"]).status, 0);
  // train saves its own first and last validations as eval channel's result: the same as evaluating again
  const byTrain = JSON.parse(fs.readFileSync(path.join(run, "eval", "channel.json"), "utf8"));
  assert.match(byTrain.written_by, /^train/);
  const again = runCli(["eval", "channel", "--run", run, "--quiet", "--json"]);
  assert.equal(again.status, 0, again.stderr);
  const byEval = JSON.parse(again.stdout);
  assert.deepEqual(byTrain.conditions, byEval.conditions);
  assert.equal(byTrain.episodes, byEval.episodes);
  const r = channel(run);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual({ ...JSON.parse(fs.readFileSync(path.join(run, "eval", "channel.json"), "utf8")), seconds: 0 }, { ...out, seconds: 0 });
  assert.deepEqual(
    out.conditions.map((c: { condition: string }) => c.condition),
    ["before", "after"],
  );
  // the run's own validation episodes and seeds: training's paired delivery effects, exactly
  const summary = JSON.parse(fs.readFileSync(path.join(run, "summary.json"), "utf8"));
  const all = byEval;
  assert.equal(all.episodes, summary.val_message_effect.episodes);
  assert.equal(all.conditions[0].delivery.effect.mean, summary.val_message_effect_initial.mean);
  assert.equal(all.conditions[1].delivery.effect.mean, summary.val_message_effect.mean);
  assert.ok(Math.abs(all.conditions[1].delivery.with.mean - summary.val_information_gain_final) < 1e-12);
  assert.ok(Math.abs(all.conditions[1].delivery.without.mean - summary.val_information_gain_final_no_messages) < 1e-12);
  for (const { report, delivery } of out.conditions) {
    const e = delivery.effect;
    assert.ok(Number.isFinite(e.mean) && e.n === 6 && e.low <= e.high);
    assert.ok(Math.abs(e.mean - (delivery.with.mean - delivery.without.mean)) < 1e-12, "the effect is the paired difference");
    assert.ok(delivery.oracle.mean > 0);
    assert.ok(report.talk[3][0].mean > 0 && report.talk[0][0] === null, "the liar's messages reach agent 0");
    const [, , honest, liar] = report.honesty;
    assert.equal(honest.rate, 1);
    assert.equal(liar.rate, 0);
    assert.ok(liar.n > 0 && liar.high < 0.5, "the liar's interval excludes a coin toss");
    assert.equal(report.listening.length, 4);
    report.listening.forEach((row: unknown[], i: number) => assert.equal(row[i], null, "no agent listens to itself"));
    const fromLiar = report.listening[0][3];
    assert.ok(fromLiar.n > 0 && fromLiar.low <= fromLiar.rate && fromLiar.rate <= fromLiar.high, "the liar talks to everyone");
    assert.ok(report.message_value[3][0].n > 0 && Number.isFinite(report.message_value[3][0].mean));
    assert.equal(report.messages_per_round[2].length, 2, "one mean per round (smoke: 2 rounds)");
    assert.equal(report.messages_per_round[2][0].mean, 2, "the honest agent sends both facts of its first excerpt");
    for (const f of report.facts) assert.ok(f.delivered.n > 0 && f.passed.n > 0, JSON.stringify(f));
    assert.equal(report.facts[0].delivered.rate, report.facts[0].delivered.successes / report.facts[0].delivered.n);
  }
});

test("eval channel: adapters that did not move give the same report before and after; errors are one line", () => {
  const run = path.join(dir, "still");
  assert.equal(train(run, ["--lr=1e-30", "--iterations=1"]).status, 0);
  const out = JSON.parse(channel(run).stdout);
  assert.deepEqual(out.conditions[1].report, out.conditions[0].report);
  assert.deepEqual(out.conditions[1].delivery, out.conditions[0].delivery);
  assertUserError(runCli(["eval", "channel", "--quiet"]), /--run is required/);
  assertUserError(runCli(["eval", "channel", "--run", path.join(dir, "none"), "--quiet"]), /no run in|not found|missing/i);
});
