/**
 * `colloquy train` with hostile input: an --out that is a file, a batch size that would take gigabytes before
 * anything runs, and run folders whose checkpoint is damaged (wrongly typed state.json, NaN adapters) — each a
 * one-line error with exit status 2, none a stack trace, none a resumed run that trains on NaN.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { readRaw, replaceTensor, withValue } from "./hostile-files.ts";
import { assertUserError, runCli, tmpDir } from "./support.ts";
import { saveTinyModel } from "./tiny.ts";

const dir = tmpDir("colloquy-train-hostile-");
const model = saveTinyModel(path.join(dir, "tiny"));
const smoke = (out: string, extra: string[] = []) => ["train", "--preset", "smoke", `--model=${model}`, "--out", out, "--quiet", ...extra];

test("train: --out naming a file, and batch sizes beyond bounds, are refused before any work", () => {
  const file = path.join(dir, "a-file");
  fs.writeFileSync(file, "x");
  assertUserError(runCli(smoke(file)), /E_BAD_OUT.*a-file/);
  assertUserError(runCli(smoke(path.join(file, "run"))), /E_BAD_OUT.*cannot create the run folder/);
  const t0 = performance.now();
  assertUserError(runCli(smoke(path.join(dir, "big"), ["--episodes=1e8"])), /E_BAD_VALUE.*--episodes/);
  assertUserError(runCli(smoke(path.join(dir, "big"), ["--episodes=65536", "--group=4"])), /E_BAD_VALUE.*episodes × group/);
  assertUserError(runCli(smoke(path.join(dir, "big"), ["--evalEpisodes=1e9"])), /E_BAD_VALUE.*evalEpisodes/);
  assert.ok(performance.now() - t0 < 60_000);
  assert.ok(!fs.existsSync(path.join(dir, "big")), "nothing written");
});

test("train --resume: a damaged checkpoint is a one-line error, never a resumed run on NaN", () => {
  const run = path.join(dir, "run");
  const r = runCli(smoke(run, ["--iterations=1"]));
  assert.equal(r.status, 0, r.stderr);
  const copy = (name: string) => {
    const d = path.join(dir, name);
    fs.cpSync(run, d, { recursive: true });
    return d;
  };
  const state = (d: string) => path.join(d, "checkpoint", "state.json");
  const edit = (d: string, f: (s: Record<string, unknown>) => void) => {
    const s = JSON.parse(fs.readFileSync(state(d), "utf8"));
    f(s);
    fs.writeFileSync(state(d), JSON.stringify(s));
  };
  const resume = (d: string) => runCli(["train", "--resume", d, "--quiet"]);
  for (const [name, damage, why] of [
    ["iteration-string", (s) => (s.iteration = "one"), /E_BAD_CHECKPOINT.*state\.json: iteration: /],
    ["rng-number", (s) => (s.rng = 5), /E_BAD_CHECKPOINT.*state\.json: rng: /],
    ["rng-short", (s) => (s.rng = [1, 2]), /E_BAD_CHECKPOINT.*state\.json: rng: /],
    ["beta-null", (s) => (s.beta = null), /E_BAD_CHECKPOINT.*state\.json: beta: /],
    ["optimizer-steps-missing", (s) => delete s.optimizerSteps, /E_BAD_CHECKPOINT.*optimizerSteps/],
    ["initial-gain-null", (s) => (s.initial = { learner_gain: null }), /E_BAD_CHECKPOINT.*initial\.learner_gain/],
  ] as [string, (s: Record<string, unknown>) => void, RegExp][]) {
    const d = copy(name);
    edit(d, damage);
    assertUserError(resume(d), why);
  }
  const notJson = copy("state-not-json");
  fs.writeFileSync(state(notJson), "{");
  assertUserError(resume(notJson), /E_BAD_JSON.*state\.json/);
  const nan = copy("nan-adapter");
  const weights = path.join(nan, "checkpoint", "adapters.safetensors");
  const first = readRaw(weights).find(([n]) => n.includes("/weights/"))![0];
  replaceTensor(weights, first, (t) => withValue(t, 0, Number.NaN));
  const before = fs.readFileSync(path.join(nan, "metrics.jsonl"), "utf8");
  assertUserError(resume(nan), /E_NON_FINITE.*adapters\.safetensors.*holds NaN/);
  assert.equal(fs.readFileSync(path.join(nan, "metrics.jsonl"), "utf8"), before, "nothing logged");
});
