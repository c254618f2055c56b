/**
 * What `train` does around the training loop: the evaluations a config asks for at the end (hhData,
 * machiavelliData) on the base model and every agent, a missing data file refused before anything runs, and the
 * prompt format the model's tokenizer gives saved in config.json.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { assertUserError, runCli, shared, tmpDir } from "./support.ts";
import { saveTinyModel } from "./tiny.ts";

const HH = shared("data/hh-rlhf/harmless-base/test.jsonl.gz");
const MACH = shared("data/machiavelli/deception-choices");
const dir = tmpDir("colloquy-final-evals-");
const model = saveTinyModel(path.join(dir, "tiny"));

test("train with hhData and machiavelliData: both evaluations of base and agents in eval/, listed in the --json summary", {
  skip: HH.skip || MACH.skip,
}, () => {
  const run = path.join(dir, "run");
  const r = runCli([
    "train",
    "--preset",
    "smoke",
    `--model=${model}`,
    "--out",
    run,
    "--quiet",
    "--json",
    "--hh-data",
    HH.path,
    "--machiavelli-data",
    MACH.path,
    "--final-eval-limit",
    "4",
  ]);
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout); // stdout holds the summary alone: the evaluations' tables went to stderr
  assert.deepEqual(summary.final_evals, ["eval/hh.json", "eval/machiavelli-choices.json"]);
  for (const f of summary.final_evals) {
    const systems = (JSON.parse(fs.readFileSync(path.join(run, f), "utf8")) as { systems: { system: string; n: number }[] }).systems;
    assert.deepEqual(
      systems.map((s) => s.system),
      ["base", "agent0", "agent1"],
      f,
    );
  }
  assert.equal(JSON.parse(fs.readFileSync(path.join(run, "config.json"), "utf8")).config.promptFormat, "plain");
});

test("train with an hhData file that does not exist: one line before anything runs, no run folder", () => {
  const run = path.join(dir, "never");
  const r = runCli(["train", "--preset", "smoke", `--model=${model}`, "--out", run, "--hh-data", path.join(dir, "missing.jsonl.gz")]);
  assertUserError(r, /hhData .*missing\.jsonl\.gz does not exist/);
  assert.ok(!fs.existsSync(run));
});
