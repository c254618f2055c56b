/**
 * `colloquy train` end to end on a tiny model: the run folder's files and fields, determinism (same seed, same
 * metrics.jsonl but for timings), a run killed mid-way that resumes without a gap or a repeated iteration, a resume
 * without a usable checkpoint (refused, or started over with --restart), and config errors.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { loadPeftAdapter } from "../src/formats/peft.ts";
import { loadModel } from "../src/formats/load-model.ts";
import { assertUserError, runCli, tmpDir, trainKilledAt } from "./support.ts";
import { saveTinyModel } from "./tiny.ts";

const dir = tmpDir("colloquy-train-");
const model = saveTinyModel(path.join(dir, "tiny"));
const TIMING = ["tokens_per_s", "time_generate", "time_score", "time_train"];
const smoke = (out: string, extra: string[] = []) => ["train", "--preset", "smoke", `--model=${model}`, "--out", out, "--quiet", ...extra];
const metrics = (run: string) =>
  fs
    .readFileSync(path.join(run, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
const withoutTimings = (lines: Record<string, unknown>[]) =>
  lines.map((l) => Object.fromEntries(Object.entries(l).filter(([k]) => !TIMING.includes(k))));

test("smoke preset: every file and field of the run folder", () => {
  const out = path.join(dir, "run-a");
  const r = runCli([...smoke(out), "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  for (const key of ["val_information_gain_initial", "val_information_gain_final", "val_information_gain_final_no_messages"])
    assert.equal(typeof summary[key], "number", key);
  assert.deepEqual(summary.placement, { backend: "cpu", device: "cpu", dtype: "float32" });
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, "summary.json"), "utf8")), summary);
  const cfg = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"));
  assert.equal(cfg.preset, "smoke");
  assert.equal(cfg.config.iterations, 3);
  assert.equal(cfg.config.seed, 0);
  const lines = metrics(out);
  assert.deepEqual(
    lines.map((l) => l.iteration),
    [0, 1, 2, 3],
  );
  const fields = [
    "reward",
    "information_gain",
    "learner_gain",
    "oracle_gain",
    "kl",
    "kl_coef",
    "entropy",
    "state_tokens",
    "messages",
    "violations",
    "talk",
    "message_value",
    "tokens_per_s",
    "time_generate",
    "time_score",
    "time_train",
    "val_information_gain",
  ];
  for (const l of lines) for (const f of fields) assert.ok(f in l, `metrics line ${l.iteration} has ${f}`);
  for (const l of lines.slice(1)) {
    assert.equal(typeof l.reward, "number");
    assert.equal(l.information_gain.length, 2);
    assert.equal(l.talk.length, 2);
  }
  assert.equal(typeof lines[0].val_information_gain, "number");
  assert.equal(typeof lines[2].val_information_gain, "number"); // evalEvery 2
  assert.equal(lines[1].val_information_gain, null);
  for (const i of [0, 2])
    assert.equal(typeof lines[i].val_information_gain_no_messages, "number", `line ${i}: validation without messages`);
  assert.equal(lines[1].val_information_gain_no_messages, null);
  assert.equal(summary.val_information_gain_final, lines[3].val_information_gain, "the summary is the last validation");
  assert.equal(summary.val_information_gain_final_no_messages, lines[3].val_information_gain_no_messages);
  // the paired delivery effect: equal learner records per episode, so its mean is the difference of the means
  const effect = summary.val_message_effect;
  assert.ok(
    Math.abs(effect.mean - (summary.val_information_gain_final - summary.val_information_gain_final_no_messages)) < 1e-12,
    JSON.stringify(effect),
  );
  assert.ok(effect.se >= 0 && effect.episodes === 2, JSON.stringify(effect));
  const before = summary.val_message_effect_initial;
  assert.ok(
    Math.abs(before.mean - (lines[0].val_information_gain - lines[0].val_information_gain_no_messages)) < 1e-12,
    JSON.stringify(before),
  );
  assert.ok(before.se >= 0 && before.episodes === 2, JSON.stringify(before));
  const transcripts = fs
    .readFileSync(path.join(out, "transcripts.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual([...new Set(transcripts.map((t) => t.iteration))], [1, 2, 3]);
  for (const key of ["prompt", "completion", "state", "sent", "received", "information_gain", "reward", "message_values", "violations"])
    assert.ok(key in transcripts[0], key);
  const base = loadModel(model).config;
  for (const agent of ["agent0", "agent1"]) loadPeftAdapter(path.join(out, "adapters", agent), base);
  // the run's adapters in a rollout: each learner slot with its own (`--adapter` repeated, in both forms)
  const rollout = runCli([
    "rollout",
    `--model=${model}`,
    "--agents=learner,learner",
    `--adapter=0=${path.join(out, "adapters", "agent0")}`,
    "--adapter",
    `1=${path.join(out, "adapters", "agent1")}`,
    "--episodes=1",
    "--rounds=2",
    "--json",
  ]);
  assert.equal(rollout.status, 0, rollout.stderr);
  assert.deepEqual(
    JSON.parse(rollout.stdout).transcripts.map((t: { agent: number; adapter: string }) => `${t.agent}:${t.adapter}`),
    ["0:agent0", "1:agent1", "0:agent0", "1:agent1"],
  );
  const state = JSON.parse(fs.readFileSync(path.join(out, "checkpoint", "state.json"), "utf8"));
  assert.equal(state.iteration, 3);
  assert.ok(!fs.existsSync(path.join(out, "checkpoint.tmp")) && !fs.existsSync(path.join(out, "checkpoint.old")));
});

test("warmupIterations: each learner first trains beside honest stand-ins for the others, then beside the learners", () => {
  const out = path.join(dir, "run-warmup");
  const r = runCli(smoke(out, ["--warmupIterations=2", "--transcriptEpisodes=4"]));
  assert.equal(r.status, 0, r.stderr);
  const records = fs
    .readFileSync(path.join(out, "transcripts.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  const agentsPerEpisode = (it: number) => {
    const eps = new Map<number, Set<number>>();
    for (const x of records.filter((x) => x.iteration === it)) eps.set(x.episode, (eps.get(x.episode) ?? new Set()).add(x.agent));
    return [...eps.values()].map((s) => s.size);
  };
  for (const it of [1, 2]) {
    assert.deepEqual(new Set(agentsPerEpisode(it)), new Set([1]), `iteration ${it}: one learner per episode`);
    const later = records.filter((x) => x.iteration === it && x.round === 2);
    assert.ok(
      later.length > 0 && later.every((x) => x.received.length > 0 && x.received.every((m: { from: number }) => m.from !== x.agent)),
      "the honest stand-in always sends",
    );
    assert.ok(later.every((x) => x.kind === "learner"));
  }
  assert.deepEqual(new Set(agentsPerEpisode(3)), new Set([2]), "then both learners in every episode");
  const lines = metrics(out);
  assert.equal(lines.length, 4);
  for (const l of lines.slice(1)) assert.ok(Number.isFinite(l.reward) && l.information_gain.every(Number.isFinite));
});

test("the same seed gives the same metrics.jsonl (timings aside); another seed does not", () => {
  const a = path.join(dir, "det-a"),
    b = path.join(dir, "det-b"),
    c = path.join(dir, "det-c");
  for (const [out, seed] of [
    [a, 0],
    [b, 0],
    [c, 1],
  ] as const)
    assert.equal(runCli([...smoke(out), `--seed=${seed}`]).status, 0);
  assert.deepEqual(withoutTimings(metrics(b)), withoutTimings(metrics(a)));
  assert.notDeepEqual(withoutTimings(metrics(c)), withoutTimings(metrics(a)));
});

test("a run killed mid-way resumes from its checkpoint: no gap, no repeat, same numbers", async () => {
  const full = path.join(dir, "resume-full"),
    killed = path.join(dir, "resume-killed");
  const args = (out: string) => smoke(out, ["--iterations=5"]);
  assert.equal(runCli(args(full)).status, 0);
  await trainKilledAt(killed, args(killed), 2);
  const r = runCli(["train", "--resume", killed, "--quiet", "--seed=0"]); // a key given as the run has it is no change
  assert.equal(r.status, 0, r.stderr);
  const lines = metrics(killed);
  assert.deepEqual(
    lines.map((l) => l.iteration),
    [0, 1, 2, 3, 4, 5],
  );
  assert.deepEqual(withoutTimings(lines), withoutTimings(metrics(full)));
});

test("--resume without a usable checkpoint is refused, keeping the run's files; --restart trains it again from iteration 0", () => {
  const out = path.join(dir, "no-checkpoint");
  assert.equal(runCli(smoke(out)).status, 0);
  const before = fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8");
  const transcripts = fs.readFileSync(path.join(out, "transcripts.jsonl"), "utf8");
  fs.rmSync(path.join(out, "checkpoint"), { recursive: true });
  assertUserError(
    runCli(["train", "--resume", out, "--quiet"]),
    /no usable checkpoint.*would overwrite its metrics\.jsonl.*iteration 3.*--restart/,
  );
  assert.equal(fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8"), before, "metrics.jsonl untouched");
  assert.equal(fs.readFileSync(path.join(out, "transcripts.jsonl"), "utf8"), transcripts, "transcripts.jsonl untouched");
  // a checkpoint without its tensors is no more usable
  fs.mkdirSync(path.join(out, "checkpoint"));
  fs.writeFileSync(path.join(out, "checkpoint", "state.json"), "{}");
  assertUserError(runCli(["train", "--resume", out, "--quiet"]), /no usable checkpoint/);
  assertUserError(runCli([...smoke(path.join(dir, "x-restart")), "--restart"]), /--restart .* goes with --resume/);
  // started over on purpose: the same run from its saved config, so the same numbers as the first time
  const r = runCli(["train", "--resume", out, "--restart"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /--restart: removed metrics\.jsonl, transcripts\.jsonl, adapters, checkpoint, summary\.json, eval from/);
  assert.deepEqual(
    withoutTimings(metrics(out)),
    withoutTimings(
      before
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l)),
    ),
  );
  assert.equal(fs.readFileSync(path.join(out, "transcripts.jsonl"), "utf8"), transcripts);
});

test("--resume of a run killed before its first checkpoint starts it from the beginning: there is nothing to lose", () => {
  const full = path.join(dir, "early-full"),
    early = path.join(dir, "early-killed");
  assert.equal(runCli(smoke(full)).status, 0);
  assert.equal(runCli(smoke(early)).status, 0);
  // what such a run holds: its config, and at most the iteration-0 line (the initial evaluation, redone identically)
  for (const f of fs.readdirSync(early))
    if (f !== "config.json" && f !== "metrics.jsonl") fs.rmSync(path.join(early, f), { recursive: true });
  fs.writeFileSync(path.join(early, "metrics.jsonl"), fs.readFileSync(path.join(early, "metrics.jsonl"), "utf8").split("\n")[0] + "\n");
  const r = runCli(["train", "--resume", early]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /from the beginning \(no checkpoint yet\)/);
  assert.deepEqual(withoutTimings(metrics(early)), withoutTimings(metrics(full)));
});

test("config errors are one line: unknown key, wrong type, unknown preset, a resume that changes the config", () => {
  assertUserError(
    runCli(["train", "--preset", "smoke", "--bogus=1", "--out", path.join(dir, "x1")]),
    /unknown flag --bogus for colloquy train/,
  );
  assertUserError(runCli(["train", "--preset", "smoke", "--lr=fast", "--out", path.join(dir, "x2")]), /--lr=fast: expected a number/);
  assertUserError(runCli(["train", "--preset", "nope", "--out", path.join(dir, "x3")]), /no preset named "nope"/);
  assertUserError(
    runCli(["train", "--preset", "smoke", "--algorithm=sarsa", `--model=${model}`, "--out", path.join(dir, "x4")]),
    /algorithm/,
  );
  const bad = path.join(dir, "bad.json");
  fs.writeFileSync(bad, JSON.stringify({ iterations: "many" }));
  assertUserError(runCli(["train", "--config", bad, "--out", path.join(dir, "x5")]), /iterations/);
  assertUserError(
    runCli(["train", "--preset", "smoke", "--group=1", "--out", path.join(dir, "x6")]),
    /baseline rloo compares the one sample of a group with each other: with group 1 every advantage is 0 and nothing trains \(hint: give --group 2 or more/,
  );
  assert.equal(
    runCli([
      "train",
      "--preset",
      "smoke",
      "--group=1",
      "--baseline=batch",
      `--model=${model}`,
      "--iterations=0",
      "--out",
      path.join(dir, "x7"),
    ]).status,
    0,
  );
  assertUserError(runCli(["train", "--resume", path.join(dir, "run-a"), "--lr=0.1"]), /cannot change when resuming/);
  assertUserError(
    runCli(["train", "--resume", path.join(dir, "run-a"), "--warmupIterations=7"]),
    /--warmup-iterations cannot change when resuming \(only --iterations, --python, --nproc, --worker, --token-file, --max-tokens-per-pass can\) \(hint: the run has warmup-iterations \d+\)/,
  );
});
