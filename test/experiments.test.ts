/**
 * `colloquy experiments --quick` on the tiny model, two seeds, with small HH-RLHF and MACHIAVELLI files: every row
 * of the table appears in RESULTS.md and results.json with finite numbers and intervals, each run with its config
 * hash and train command; a second invocation reuses every run and evaluation; bad flags are one-line errors.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import zlib from "node:zlib";
import { README_BEGIN, README_END, replaceBetweenMarkers, resultsMarkdown, resultsSummary } from "../src/experiments/results.ts";
import { assertUserError, runCli, tmpDir } from "./support.ts";
import { saveTinyModel } from "./tiny.ts";

const dir = tmpDir("colloquy-experiments-");
const model = saveTinyModel(path.join(dir, "tiny"));
const out = path.join(dir, "results");
const hh = path.join(dir, "hh.jsonl.gz");
fs.writeFileSync(
  hh,
  zlib.gzipSync(
    Array.from({ length: 4 }, (_, i) =>
      JSON.stringify({
        chosen: `\n\nHuman: Question ${i}?\n\nAssistant: Yes, gladly.`,
        rejected: `\n\nHuman: Question ${i}?\n\nAssistant: No.`,
      }),
    ).join("\n") + "\n",
  ),
);
const mach = path.join(dir, "points.jsonl");
fs.writeFileSync(
  mach,
  JSON.stringify({
    context: "The clerk asks for your name.",
    answer: "I give a false name.",
    alt_answers: ["I give my name."],
    type: "deception",
  }) + "\n",
);
const experiments = (...extra: string[]) =>
  runCli([
    "experiments",
    "--quick",
    "--seeds",
    "0,1",
    "--out",
    out,
    `--model=${model}`,
    "--hh-data",
    hh,
    "--machiavelli-data",
    mach,
    "--no-figures",
    ...extra,
  ]);

const ROWS = ["communication", "liar", "social", "solitary", "drift", "roles", "prosociality", "test-split"];

test("experiments --quick: every row, finite numbers with intervals, runs with config hashes; a rerun reuses everything", () => {
  const readme = path.join(dir, "README.md");
  fs.writeFileSync(readme, `# A README\n\n## Results\n\n${README_BEGIN}\nold numbers\n${README_END}\n\n## After\n`);
  // one row first with --jobs 2 (its runs and evaluations in child processes), then the whole table in this process
  const byChildren = experiments("--json", "--only", "test-split", "--jobs", "2");
  assert.equal(byChildren.status, 0, byChildren.stderr);
  assert.ok(fs.existsSync(path.join(out, "logs", "default-s1.channel-test.log")), "--jobs 2 keeps each child's log");
  const r = experiments("--json", "--readme", readme);
  assert.doesNotMatch(r.stderr, /eval channel {2}on/, "train saved each run's eval/channel.json itself");
  assert.equal(r.status, 0, r.stderr);
  const table = JSON.parse(r.stdout);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, "results.json"), "utf8")), table);
  assert.deepEqual(
    table.rows.map((x: { id: string }) => x.id),
    ROWS,
  );
  const md = fs.readFileSync(path.join(out, "RESULTS.md"), "utf8");
  assert.equal(md, resultsMarkdown(table));
  const written = fs.readFileSync(readme, "utf8");
  assert.equal(
    written,
    replaceBetweenMarkers(
      `# A README\n\n## Results\n\n${README_BEGIN}\n${README_END}\n\n## After\n`,
      resultsSummary(table, "results/RESULTS.md"),
    ),
  );
  assert.doesNotMatch(written, /old numbers/);
  assert.match(written, /#### liar: [\s\S]*\| after: learners pass on the liar's messages \|/);
  for (const row of table.rows) {
    assert.match(md, new RegExp(`^## ${row.id}: `, "m"));
    assert.ok(row.runs.length >= 2 && row.runs.every((x: { config_hash: string }) => /^[0-9a-f]{12}$/.test(x.config_hash)), row.id);
    assert.ok(row.cells.length > 0, `${row.id} has figures`);
    const finite = row.cells.filter((c: { value: number | null }) => c.value !== null);
    assert.ok(finite.length > 0, `${row.id}: some finite value`);
    for (const c of finite) {
      assert.ok(Number.isFinite(c.value) && Number.isFinite(c.low) && Number.isFinite(c.high), `${row.id}: ${c.label}`);
      assert.ok(c.low <= c.value + 1e-12 && c.value <= c.high + 1e-12, `${row.id}: ${c.label} inside its interval`);
      assert.equal(c.per_seed.length, c.label.includes("base model") ? 1 : 2, `${row.id}: ${c.label}`);
    }
    assert.ok(row.seconds > 0, `${row.id} has its time`);
    assert.match(row.command, new RegExp(`--only ${row.id} --seeds 0,1 --quick`));
  }
  // the same config is one run: the default run serves seven rows
  const defaultRuns = table.rows.filter((x: { runs: { id: string }[] }) => x.runs.some((y) => y.id === "default-s0"));
  assert.equal(defaultRuns.length, 7);
  assert.equal(
    new Set(defaultRuns.map((x: { runs: { id: string; config_hash: string }[] }) => x.runs.find((y) => y.id === "default-s0")!.config_hash))
      .size,
    1,
  );
  const comm = table.rows[0];
  assert.match(comm.runs[0].command, /^npx colloquy train --preset default --iterations=2 .*--seed=0$/);
  assert.ok(comm.notes.some((n: string) => /issue 17/.test(n)));
  const pro = table.rows.find((x: { id: string }) => x.id === "prosociality");
  assert.equal(pro.cells.length, 4, "HH and MACHIAVELLI, base and agents");
  assert.ok(pro.command.endsWith(` --hh-data ${hh} --machiavelli-data ${mach}`), pro.command);
  assert.match(table.command, / --hh-data .* --machiavelli-data /);

  // resumed: nothing is trained or evaluated again, and the table is the same
  const runsBefore = fs.statSync(path.join(out, "runs", "default-s0", "summary.json")).mtimeMs;
  const again = experiments("--json");
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /default-s0: done, reused/);
  assert.doesNotMatch(again.stderr, /eval /);
  assert.equal(fs.statSync(path.join(out, "runs", "default-s0", "summary.json")).mtimeMs, runsBefore);
  const strip = (t: { created: string; seconds: number; rows: { cells: unknown }[] }) => t.rows.map((x) => x.cells);
  assert.deepEqual(strip(JSON.parse(again.stdout)), strip(table));

  // an evaluation made again in this process gives what the child process gave
  fs.rmSync(path.join(out, "runs", "default-s1", "eval", "channel-test.json"));
  const inProcess = experiments("--json", "--only", "test-split");
  assert.equal(inProcess.status, 0, inProcess.stderr);
  assert.equal(inProcess.stderr.match(/eval /g)?.length, 1, inProcess.stderr);
  assert.deepEqual(strip(JSON.parse(inProcess.stdout)), strip(JSON.parse(byChildren.stdout)));
});

test("experiments: unknown rows, bad seeds and missing data files are one-line errors", () => {
  assertUserError(runCli(["experiments", "--only", "nope", "--out", path.join(dir, "x")]), /unknown row "nope"/);
  assertUserError(runCli(["experiments", "--seeds", "a", "--out", path.join(dir, "x")]), /--seeds a/);
  assertUserError(runCli(["experiments", "--hh-data", path.join(dir, "none.jsonl"), "--out", path.join(dir, "x")]), /does not exist/);
  const busy = path.join(dir, "busy");
  fs.mkdirSync(busy);
  fs.writeFileSync(path.join(busy, ".lock"), String(process.pid)); // a live process holds it
  assertUserError(runCli(["experiments", "--quick", "--out", busy]), /being written by another colloquy experiments \(pid \d+\)/);
  // a lock left by a process that is gone is taken over (here the run then stops at a corrupt timings.json) and
  // released at exit
  const dead = spawnSync(process.execPath, ["-e", ""]).pid;
  fs.writeFileSync(path.join(busy, ".lock"), String(dead));
  fs.writeFileSync(path.join(busy, "timings.json"), "{ torn");
  assertUserError(runCli(["experiments", "--quick", "--out", busy]), /timings/);
  assert.ok(!fs.existsSync(path.join(busy, ".lock")), "the taken-over lock is released at exit");
  const noMarkers = path.join(dir, "plain.md");
  fs.writeFileSync(noMarkers, "# no markers\n");
  assertUserError(experiments("--readme", noMarkers), /no results markers/);
});
