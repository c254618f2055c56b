/**
 * `colloquy eval language` on a smoke run of the tiny model with two learners and two scripted agents (honest,
 * liar): drift series per iteration, honesty that tells the honest agent from the liar, the matrices per block,
 * and the adapter-swap test, whose in-place half must reproduce the trainer's own final validation exactly.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { assertUserError, runCli, tmpDir } from "./support.ts";
import { saveTinyModel } from "./tiny.ts";

const dir = tmpDir("colloquy-eval-language-");
const model = saveTinyModel(path.join(dir, "tiny"));
const run = path.join(dir, "run");
const train = runCli(["train", "--preset", "smoke", `--model=${model}`, "--agents=learner,learner,honest,liar", "--out", run, "--quiet"]);
const lang = (...extra: string[]) => runCli(["eval", "language", "--run", run, "--quiet", "--json", ...extra]);
const withoutSeconds = (r: Record<string, unknown>) => ({ ...r, seconds: 0 });

test("eval language: drift, honesty, listening, matrices and role specialisation of a run", () => {
  assert.equal(train.status, 0, train.stderr);
  const r = lang();
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim().split("\n").length, 1, "--json prints exactly one line");
  const out = JSON.parse(r.stdout);
  assert.deepEqual(withoutSeconds(JSON.parse(fs.readFileSync(path.join(run, "eval", "language.json"), "utf8"))), withoutSeconds(out));
  const summary = JSON.parse(fs.readFileSync(path.join(run, "summary.json"), "utf8"));

  // drift: one point per iteration of transcripts.jsonl, learners and the scripted reference
  assert.deepEqual(
    out.drift.series.map((p: { iteration: number }) => p.iteration),
    [1, 2, 3],
  );
  assert.deepEqual(out.drift.groups, ["learners", "scripted"]);
  for (const p of out.drift.series) {
    const s = p.groups.learners.state;
    assert.ok(s.texts > 0 && s.tokens > 0 && s.perplexity > 1 && Number.isFinite(s.perplexity), JSON.stringify(s));
    assert.ok(Math.abs(Math.log(s.perplexity) - s.nll_per_token) < 1e-9);
    assert.ok(p.groups.scripted.message.texts > 0); // honest and liar always talk
  }
  assert.match(out.drift.method, /on its own/);

  // honesty: the honest agent's claims are all true, the liar's all false
  assert.equal(out.honesty.checkable, true);
  const [, , honest, liar] = out.honesty.overall;
  assert.ok(honest.claims > 0 && liar.claims > 0);
  assert.equal(honest.share_true, 1);
  assert.equal(liar.share_true, 0);
  assert.equal(out.honesty.per_iteration.length, 3);

  // listening: the learners receive what the scripted agents send, and keep what their states hold verbatim
  assert.equal(out.listening.overall.length, 4);
  assert.ok(out.listening.overall[0].received > 0 && out.listening.overall[0].kept <= out.listening.overall[0].received);
  assert.equal(out.listening.per_iteration.length, 3);

  // matrices from metrics.jsonl: 3 iterations → blocks of 1
  assert.equal(out.matrices.block, 1);
  assert.equal(out.matrices.blocks.length, 3);
  assert.equal(out.matrices.blocks[2].talk.length, 4);
  assert.ok(out.matrices.blocks[2].talk[2][0] > 0); // the honest agent talks to agent 0

  // roles: the in-place run is the trainer's final validation, to the last bit
  assert.equal(out.roles.applicable, true);
  assert.equal(out.roles.in_place.learner_gain, summary.val_information_gain_final);
  assert.deepEqual(
    out.roles.in_place.per_agent.map((a: { gain: number }) => a.gain),
    summary.val_information_gain_per_agent,
  );
  assert.equal(out.roles.swaps.length, 1);
  const s = out.roles.swaps[0];
  assert.deepEqual(s.agents, [0, 1]);
  assert.deepEqual(s.adapters, ["agent0", "agent1"]);
  assertNear(s.delta_gain.mean, s.learner_gain - out.roles.in_place.learner_gain);
  assertNear(s.delta_loss.mean, s.learner_loss - out.roles.in_place.learner_loss);
  assert.ok(s.delta_gain.ci95[0] <= s.delta_gain.mean && s.delta_gain.mean <= s.delta_gain.ci95[1]);
  assert.equal(s.per_agent[0].adapter, "agent1");
});

test("eval language is deterministic; --swap picks a pair or skips the swap; bad pairs are one-line errors", () => {
  assert.equal(train.status, 0, train.stderr);
  const first = JSON.parse(fs.readFileSync(path.join(run, "eval", "language.json"), "utf8"));
  const again = lang("--swap", "1,0");
  assert.equal(again.status, 0, again.stderr);
  const j = JSON.parse(again.stdout);
  assert.deepEqual(withoutSeconds({ ...j, roles: null }), withoutSeconds({ ...first, roles: null }));
  assert.deepEqual(j.roles.in_place, first.roles.in_place);
  assert.deepEqual(j.roles.swaps[0].agents, [1, 0]);
  assertNear(j.roles.swaps[0].learner_gain, first.roles.swaps[0].learner_gain); // the same swap, named the other way round
  const none = lang("--swap", "none");
  assert.equal(none.status, 0, none.stderr);
  assert.equal(JSON.parse(none.stdout).roles.applicable, false);
  assertUserError(lang("--swap", "0,2"), /agent 2 is honest, not a learner/);
  assertUserError(lang("--swap", "zero"), /--swap zero/);
  assertUserError(runCli(["eval", "language", "--run", path.join(dir, "nope")]), /not found/);
});

function assertNear(got: number, want: number, tol = 1e-12): void {
  assert.ok(Math.abs(got - want) <= tol, `${got} ≠ ${want}`);
}
