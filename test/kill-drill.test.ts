/**
 * The kill -9 drill (scripts/kill-drill.mjs) on the smoke preset and the tiny model: a run killed with SIGKILL three
 * times at seeded random moments and resumed after each kill ends exactly as the same run uninterrupted (metrics,
 * transcripts, adapters and checkpoint byte for byte, summary).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { ROOT, tmpDir } from "./support.ts";
import { saveTinyModel } from "./tiny.ts";

test("kill drill: 3 kills at random moments, resumed each time, equal the uninterrupted run", () => {
  const dir = tmpDir("colloquy-kill-drill-");
  const model = saveTinyModel(path.join(dir, "tiny"));
  // seed 3 kills the new run while it starts, then between metrics lines 2 and 3 and between 4 and 5
  const r = spawnSync(
    process.execPath,
    [
      path.join(ROOT, "scripts/kill-drill.mjs"),
      "--kills",
      "3",
      "--seed",
      "3",
      "--dir",
      path.join(dir, "drill"),
      "--json",
      "--",
      "--preset",
      "smoke",
      `--model=${model}`,
      "--iterations=6",
    ],
    { cwd: ROOT, encoding: "utf8", timeout: 300_000 },
  );
  assert.ok(r.stdout.trim(), `no outcome; stderr: ${r.stderr}`);
  const outcome = JSON.parse(r.stdout);
  console.log(
    `kill drill: ${outcome.landed} of ${outcome.kills} kills landed (${outcome.plan.map((k: { ms: number; checkpoint: number | null }) => `${k.ms} ms → checkpoint ${k.checkpoint ?? "-"}`).join("; ")}) in ${outcome.seconds.toFixed(1)} s`,
  );
  assert.deepEqual(outcome.diffs, []);
  assert.equal(r.status, 0, r.stderr);
  // a kill misses only when the process finishes first, which the plan leaves little time for
  assert.ok(outcome.landed >= 2, `only ${outcome.landed} kills landed`);
});
