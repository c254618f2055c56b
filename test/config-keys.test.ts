/**
 * One configuration: the environment's keys mean the same on every verb, in every spelling (--key=value,
 * --key value, kebab-case, a --config file), with the same one-line errors.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { runCli, tmpDir } from "./support.ts";
import { saveTinyModel } from "./tiny.ts";

const dir = tmpDir("colloquy-keys-");
const model = saveTinyModel(path.join(dir, "tiny"));
const rollout = (...extra: string[]) => [
  "rollout",
  "--model",
  model,
  "--agents",
  "honest,learner,liar",
  "--episodes",
  "4",
  "--seed",
  "1",
  "--json",
  ...extra,
];

/** The rollout's JSON without its timings. */
function result(args: string[]): unknown {
  const r = runCli(args);
  assert.equal(r.status, 0, r.stderr);
  const { seconds: _s, ...rest } = JSON.parse(r.stdout) as Record<string, unknown>;
  return rest;
}

test("rollout: --stateTokens=16, --state-tokens 16 and a --config file give the same episodes", () => {
  const camel = result(rollout("--stateTokens=16"));
  assert.deepEqual(result(rollout("--state-tokens", "16")), camel);
  assert.deepEqual(result(rollout("--stateTokens", "16")), camel);
  const file = path.join(dir, "cfg.json");
  fs.writeFileSync(file, JSON.stringify({ stateTokens: 16 }));
  assert.deepEqual(result(rollout("--config", file)), camel);
  // the setting is read at all: another cap gives other states
  assert.notDeepEqual(result(rollout("--stateTokens=2")), camel);
  // flags come after the file: --state-tokens overrides it
  assert.deepEqual(result(rollout("--config", file, "--state-tokens=2")), result(rollout("--stateTokens=2")));
});

test("a bad value gives the same one-line error from train and rollout", () => {
  for (const flag of ["--stateTokens=0", "--temperature=0", "--topP=1.5", "--agents=learner", "--social=kind", "--source=web"]) {
    const fromRollout = runCli(["rollout", "--model", model, flag]);
    const fromTrain = runCli(["train", "--model", model, "--out", path.join(dir, "never"), flag]);
    assert.equal(fromRollout.status, 2, flag);
    assert.equal(fromTrain.status, 2, flag);
    assert.equal(fromRollout.stderr.trim().split("\n").length, 1, fromRollout.stderr);
    assert.match(fromRollout.stderr, /^error\[E_BAD_VALUE\]: /);
    assert.equal(fromTrain.stderr, fromRollout.stderr, flag);
  }
  assert.ok(!fs.existsSync(path.join(dir, "never")), "a refused train writes no run folder");
});

test("config files: unknown keys and bad values are one-line errors naming the file", () => {
  const bad = path.join(dir, "bad.json");
  fs.writeFileSync(bad, JSON.stringify({ stateTokens: -1 }));
  const r = runCli(["rollout", "--model", model, "--config", bad]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, new RegExp(`^error\\[E_BAD_CONFIG\\]: ${bad.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: stateTokens: too small`));
  fs.writeFileSync(bad, JSON.stringify({ bogus: 1 }));
  assert.match(runCli(["rollout", "--model", model, "--config", bad]).stderr, /unknown key "bogus"/);
  assert.match(runCli(["train", "--model", model, "--config", bad, "--out", path.join(dir, "never")]).stderr, /unknown key "bogus"/);
});

test("--help is generated from the keys: every shared key with its default and meaning, the same on both verbs", () => {
  const [rolloutHelp, trainHelp] = ["rollout", "train"].map((verb) => runCli([verb, "--help"]).stdout);
  const line = (text: string, flag: string) =>
    text
      .split("\n")
      .find((l) => l.trim().startsWith(flag))
      ?.trim();
  for (const flag of [
    "--stateTokens, --state-tokens <",
    "--messagesPerRound, --messages-per-round, --messages",
    "--source, --env <",
    "--temperature <",
    "--model <",
  ]) {
    const r = line(rolloutHelp, flag);
    assert.ok(r, `rollout --help lists ${flag}`);
    assert.equal(line(trainHelp, flag), r, `train --help describes ${flag} as rollout does`);
  }
  assert.match(line(rolloutHelp, "--stateTokens")!, /\(default 48\)/);
});
