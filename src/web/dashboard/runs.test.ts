import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { syntheticRun } from "./synthetic-run.ts";
import { quietLimitMs } from "./run.ts";
import { RunsIndex, isRunFolder } from "./runs.ts";

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "colloquy-runs-"));
const line = (iteration: number, val: number | null = null) =>
  JSON.stringify({ iteration, reward: 0.1 * iteration, val_information_gain: val, time_train: 1 });

function makeRun(
  dir: string,
  lines: string[],
  config: object = { config: { agents: ["learner", "liar"], iterations: 10, rounds: 2 }, preset: "smoke" },
): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config));
  if (lines.length) fs.writeFileSync(path.join(dir, "metrics.jsonl"), lines.join("\n") + "\n");
}

test("run folders: found one and two levels down, models and adapters are not runs", () => {
  const root = tmp();
  makeRun(path.join(root, "a"), [line(0, -0.1), line(1), line(2, 0.05), line(3, 0.02)]);
  makeRun(path.join(root, "sweep", "b"), [], { config: { agents: ["learner", "learner"] } });
  fs.mkdirSync(path.join(root, "tiny"));
  fs.writeFileSync(path.join(root, "tiny", "config.json"), JSON.stringify({ dim: 32, vocab_size: 400 })); // a model
  fs.mkdirSync(path.join(root, "a", "adapters", "agent0"), { recursive: true });
  assert.equal(isRunFolder(path.join(root, "tiny")), false);
  const index = new RunsIndex(root);
  index.refresh();
  assert.deepEqual(
    index.list().map((r) => r.id),
    ["a", "sweep/b"],
  );
  const a = index.get("a")!.summary();
  assert.equal(a.preset, "smoke");
  assert.equal(a.iteration, 3);
  assert.equal(a.iterations, 10);
  assert.equal(a.best_val_gain, 0.05);
  assert.equal(a.best_val_iteration, 2);
  assert.deepEqual(a.agents, ["learner", "liar"]);
  assert.equal(a.status, "running", "just written");
  assert.equal(index.get("sweep/b")!.summary().status, "starting");
  // a run folder given directly
  const one = new RunsIndex(path.join(root, "a"));
  one.refresh();
  assert.deepEqual(
    one.list().map((r) => r.id),
    ["a"],
  );
});

test("run status: finished with a newer summary.json, stopped when quiet for long", () => {
  const root = tmp();
  const dir = path.join(root, "r");
  makeRun(dir, [line(0), line(1)]);
  const index = new RunsIndex(root);
  index.refresh();
  const run = index.get("r")!;
  assert.equal(run.status(), "running");
  assert.equal(run.status(Date.now() + quietLimitMs(1) + 1000), "stopped");
  fs.writeFileSync(path.join(dir, "summary.json"), "{}");
  assert.equal(run.status(), "finished");
  const past = new Date(Date.now() - 60_000);
  fs.utimesSync(path.join(dir, "summary.json"), past, past);
  assert.equal(run.status(), "running", "resumed: metrics newer than the old summary");
});

test("metrics log: lines kept once asked for, a rewrite (resume) starts a new generation", () => {
  const root = tmp();
  const dir = path.join(root, "r");
  makeRun(dir, [line(0), line(1), line(2)]);
  const index = new RunsIndex(root);
  index.refresh();
  const m = index.get("r")!.metrics;
  assert.equal(m.count, 3);
  assert.deepEqual(m.lines, [], "not kept until a page asks");
  m.keepLines();
  m.refresh();
  assert.equal(m.lines.length, 3);
  const g = m.generation;
  fs.appendFileSync(path.join(dir, "metrics.jsonl"), line(3) + "\n{torn");
  assert.deepEqual(m.refresh(), { reset: false, added: 1 });
  fs.writeFileSync(path.join(dir, "tmp"), [line(0), line(1)].join("\n") + "\n");
  fs.renameSync(path.join(dir, "tmp"), path.join(dir, "metrics.jsonl"));
  assert.deepEqual(m.refresh(), { reset: true, added: 2 });
  assert.ok(m.generation > g);
  assert.equal(m.lastIteration, 1);
});

test("a long run: the first read parses it once; each later refresh costs a stat, or the appended bytes", () => {
  const root = tmp();
  const dir = path.join(root, "long");
  syntheticRun(dir, { iterations: 5000, agents: 3, perIteration: 2 });
  const size = fs.statSync(path.join(dir, "metrics.jsonl")).size;
  const index = new RunsIndex(root, { minIntervalMs: 0 });
  let t0 = performance.now();
  index.refresh();
  const run = index.get("long")!;
  run.metrics.keepLines();
  run.refresh();
  const first = performance.now() - t0;
  assert.equal(run.metrics.count, 5001);
  t0 = performance.now();
  const N = 200;
  for (let i = 0; i < N; i++) index.refresh(Date.now());
  const idle = (performance.now() - t0) / N;
  const before = run.metrics.bytesRead;
  const last = fs.readFileSync(path.join(dir, "metrics.jsonl"), "utf8").trim().split("\n").pop()!;
  t0 = performance.now();
  for (let i = 1; i <= N; i++) {
    fs.appendFileSync(path.join(dir, "metrics.jsonl"), last.replace(/^\{"iteration":\d+/, `{"iteration":${5000 + i}`) + "\n");
    index.refresh(Date.now());
  }
  const append = (performance.now() - t0) / N;
  assert.equal(run.metrics.count, 5001 + N);
  const perLine = (run.metrics.bytesRead - before) / N;
  assert.ok(perLine < 2 * last.length, `read ${perLine} bytes per appended line of ${last.length}`);
  console.log(
    `metrics.jsonl of 5001 lines (${(size / 1e6).toFixed(1)} MB): first read ${first.toFixed(0)} ms; refresh with nothing new ${idle.toFixed(3)} ms; ` +
      `append one line + refresh ${append.toFixed(3)} ms, ${perLine.toFixed(0)} bytes read per line`,
  );
});
